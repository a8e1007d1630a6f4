"""How a generation must behave on the way, whatever it produced: checked after every run.

- **polling**: no more polls than a slow schedule would make in the time it took
  (`POLL_SLACK` plus `POLLS_PER_SECOND` per second, in the sandbox's time);
- **job data**: `ProviderJob.data` is JSON that survives a round trip unchanged, since the
  job journal keeps it and another process resumes from it;
- **secrets**: no configured credential appears in job data, events, results, errors,
  log records or any file the run wrote (journal, cache, stored videos);
- **resources**: the peak memory the run added and its wall time are within generous
  bounds scaled by the request (see `_resources`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ._resources import time_bound

if TYPE_CHECKING:
    from reelgen.provider import ProviderJob

    from ._harness import Generation, Harness

__all__ = [
    "POLLS_PER_SECOND",
    "POLL_SLACK",
    "captured_logs",
    "check_conduct",
    "check_job_data",
    "check_poll_schedule",
    "secret_values",
]

#: Polls any generation may make, and polls per second of (sandbox) time beyond those: a
#: schedule that looks four times a second at most once the first looks are done.
POLL_SLACK = 10
POLLS_PER_SECOND = 4.0
#: Seconds of a job the poll schedule is simulated for, and the longest single delay.
SCHEDULE_HORIZON = 600.0
MAX_DELAY = 600.0

_CREDENTIAL = re.compile(r"key|token|secret|passw|credential|auth", re.IGNORECASE)
_CREDENTIAL_ENV = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD)$")
_MIN_SECRET = 6  # shorter values would match by accident


def check_conduct(h: Harness, gen: Generation) -> None:
    """Every check of this module, for one generation (successful or not)."""
    check_job_data(h, gen.jobs)
    check_polls(h, gen)
    check_secrets(h, gen)
    check_resources(h, gen)


def check_job_data(h: Harness, jobs: Iterable[ProviderJob]) -> None:
    for job in jobs:
        try:
            text = json.dumps(dict(job.data), allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise AssertionError(
                f"{h.name}: ProviderJob.data of {job.task_id} is not JSON ({exc}): the job journal keeps it, and "
                "another process resumes the job from it; keep only str, int, float, bool, None, lists and dicts"
            ) from None
        again = json.loads(text)
        assert again == dict(job.data), (
            f"{h.name}: ProviderJob.data of {job.task_id} does not survive JSON unchanged ({dict(job.data)!r} comes "
            f"back as {again!r}): a resumed job would see other data (tuples become lists, keys become strings)"
        )


def _time_scale(h: Harness) -> float:
    return h.sandbox.time_scale if h.sandbox is not None else 1.0


def check_polls(h: Harness, gen: Generation) -> None:
    polls = gen.calls.count("poll")
    service_seconds = gen.elapsed / _time_scale(h)
    allowed = POLL_SLACK + POLLS_PER_SECOND * service_seconds
    assert polls <= allowed, (
        f"{h.name} polled {polls} times in a generation of {gen.elapsed:.2f} s ({service_seconds:.1f} s of service "
        f"time): more than {allowed:.0f} ({POLL_SLACK} + {POLLS_PER_SECOND:g} a second). Every poll is a paid or "
        "rate-limited query: return longer delays from poll_delay()"
    )


def check_poll_schedule(h: Harness) -> None:
    """`poll_delay` over a whole job: finite, >= 0, <= MAX_DELAY, and not too often in total."""
    import time

    from reelgen.provider import ProviderJob

    provider = h.new_provider().inner
    job = ProviderJob(
        provider=h.name, model=h.caps.model, task_id="reelgen-contracts-schedule", submitted_at=time.time()
    )
    horizon = SCHEDULE_HORIZON * _time_scale(h)
    allowed = POLL_SLACK + POLLS_PER_SECOND * SCHEDULE_HORIZON
    elapsed = 0.0
    attempt = 0
    while elapsed < horizon:
        try:
            delay = provider.poll_delay(job, attempt, elapsed)
        except Exception as exc:
            raise AssertionError(
                f"poll_delay(attempt={attempt}, elapsed={elapsed:.1f}) raised {type(exc).__name__}: {exc}; it is asked "
                "at every attempt of a job however long it runs (an exponent without a cap overflows)"
            ) from exc
        assert isinstance(delay, (int, float)) and not isinstance(delay, bool), (
            f"poll_delay(attempt={attempt}) returned {delay!r}, not a number of seconds"
        )
        assert 0 <= delay <= MAX_DELAY, (
            f"poll_delay(attempt={attempt}, elapsed={elapsed:.1f}) returned {delay!r}: it must be finite, >= 0 and "
            f"<= {MAX_DELAY:g} s at every attempt of a job, not only the first"
        )
        elapsed += delay
        attempt += 1
        assert attempt <= allowed, (
            f"poll_delay() schedules {attempt} polls in the first {elapsed / _time_scale(h):.1f} s of a job (allowed: "
            f"{allowed:.0f} in {SCHEDULE_HORIZON:g} s, {POLL_SLACK} + {POLLS_PER_SECOND:g} a second): back off"
        )


def secret_values(h: Harness) -> list[str]:
    """The credential values of this run: from the provider's config (and key files), the sandbox, the env."""
    values: set[str] = set()
    for key, value in h.provider_config.items():
        if not isinstance(value, str) or not _CREDENTIAL.search(key):
            continue
        if key.endswith(("_file", "_path")):
            try:
                value = Path(value).expanduser().read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                continue
        values.add(value)
    if h.sandbox is not None:
        values.update(h.sandbox.secrets)
    values.update(v for k, v in os.environ.items() if _CREDENTIAL_ENV.search(k.upper()))
    return sorted(v for v in values if len(v.strip()) >= _MIN_SECRET)


def _texts(gen: Generation) -> Iterator[tuple[str, str]]:
    from reelgen.serialization import to_json

    for job in gen.jobs:
        yield f"ProviderJob.data of {job.task_id}", json.dumps(dict(job.data), default=repr)
        yield f"ProviderJob {job.task_id}", repr(job)
    for event in gen.events:
        yield f"the {event.kind!r} event", json.dumps(dict(event.data), default=repr) + repr(event)
    if gen.result is not None:
        yield "the result", to_json(gen.result)
    if gen.error is not None:
        error: BaseException | None = gen.error
        while error is not None:
            yield "the error", f"{error!r} {error} {getattr(error, 'provider_message', '')}"
            error = error.__cause__ or error.__context__
    for record in gen.logs:
        yield "a log record", record


def _files(h: Harness) -> Iterator[Path]:
    for path in sorted(h.workdir.rglob("*")):
        if path.is_file():
            yield path


def check_secrets(h: Harness, gen: Generation) -> None:
    secrets = secret_values(h)
    if not secrets:
        return
    for where, text in _texts(gen):
        for secret in secrets:
            assert secret not in text, f"{h.name}: a configured credential ({secret[:3]}...) appears in {where}"
    encoded = [s.encode() for s in secrets]
    for path in _files(h):
        try:
            content = path.read_bytes()
        except OSError:
            continue
        for secret, raw in zip(secrets, encoded, strict=True):
            assert raw not in content, (
                f"{h.name}: a configured credential ({secret[:3]}...) is written to {path.relative_to(h.workdir)} "
                "(the job journal, the cache or a stored file): keep keys out of job data, results and errors"
            )


def check_resources(h: Harness, gen: Generation) -> None:
    request = gen.request
    if gen.memory_growth is not None:
        assert gen.memory_growth <= gen.memory_bound, (
            f"{h.name}: one generation of {request.duration:g} s at {request.fps:g} fps, {request.size}, grew the "
            f"process's peak memory by {gen.memory_growth / 2**20:.0f} MiB (bound: {gen.memory_bound / 2**20:.0f} "
            "MiB): stream frames instead of holding the video, and bound what an input image may decode to"
        )
    limit = time_bound(request)
    assert gen.elapsed <= limit, (
        f"{h.name}: one generation of {request.duration:g} s at {request.fps:g} fps, {request.size}, took "
        f"{gen.elapsed:.0f} s (bound: {limit:.0f} s): a runaway, not a slow machine"
    )


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every log record emitted (at the loggers' own levels) while the block runs, formatted."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001 - a bad format string is the logger's problem
                text = str(record.msg)
            if record.exc_info and record.exc_info[1] is not None:
                text += f" {record.exc_info[1]!r}"
            records.append(text)

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield records
    finally:
        root.removeHandler(handler)
