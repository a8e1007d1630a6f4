"""`reelgen jobs list|show|resume|cancel`: every paid generation, from the job journal.

The journal (`reelgen.journal`) writes an entry before the provider is paid, so a job
interrupted by Ctrl-C, a signal, a deadline, a crash or a failed delivery can always be
found here and collected with `reelgen jobs resume ID`. ID is the job id
(`provider:task_id`) or, for an entry whose create never answered, its entry id (`j-...`).
"""

from __future__ import annotations

import datetime
import inspect
import json
from typing import TYPE_CHECKING, Any

import click

from .errors import fail

if TYPE_CHECKING:
    from ..config import Config
    from ..contract import VideoResult
    from ..jobs import Job
    from ..journal import Journal, JournalEntry

__all__ = ["jobs"]

_STATES = (
    "submitting",
    "queued",
    "running",
    "delivering",
    "succeeded",
    "failed",
    "cancelled",
    "unknown",
    "delivery_failed",
)
_PROMPT_CHARS = 40


def _journal(as_json: bool) -> tuple[Config, Journal]:
    from ..config import load_config
    from ..errors import ConfigError, ReelgenError
    from ..journal import get_journal

    try:
        config = load_config()
        journal = get_journal(config)
        if journal is None:
            raise ConfigError(
                f"the job journal is off (jobs.url = {config.jobs.url!r}): nothing is recorded to list or resume; "
                "set jobs.url (or REELGEN_JOBS_URL) to sqlite:///path/to/jobs.db"
            )
    except ReelgenError as exc:
        fail(exc, as_json=as_json)
    return config, journal


def _entry(journal: Journal, ref: str, *, as_json: bool) -> JournalEntry:
    from ..errors import ReelgenError, ValidationError
    from ..journal import validate_ref

    try:
        validate_ref(ref)
        entry = journal.get(ref)
        if entry is None:
            raise ValidationError(f"no job {ref!r} in the job journal {journal.location}", field="job_id")
    except ReelgenError as exc:
        fail(exc, as_json=as_json)
    return entry


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds")


def _usage(usage: dict[str, Any]) -> str:
    return ",".join(f"{key}={value}" for key, value in usage.items()) or "-"


def _location(entry: JournalEntry) -> str:
    from .generate import local_path

    if entry.result is None:
        return "-"
    return local_path(entry.result.video_url) or entry.result.video_url


def _prompt(entry: JournalEntry, limit: int | None = _PROMPT_CHARS) -> str:
    prompt = " ".join(str(entry.request.get("prompt") or "").split())
    if limit is not None and len(prompt) > limit:
        prompt = prompt[: limit - 1] + "\u2026"
    return prompt


def _to_json(entry: JournalEntry) -> dict[str, Any]:
    from ..journal import entry_to_dict
    from .outcome import resume_command

    data: dict[str, Any] = {"ref": entry.ref, "job_id": entry.job_id}
    data.update(entry_to_dict(entry))
    data["resume"] = None if entry.terminal else resume_command(entry.ref)
    return data


@click.group()
def jobs() -> None:
    """Find, collect or cancel the generations in the job journal (every paid job is there).

    ID is a job id (provider:task_id) or an entry id (j-...) for a job whose create never answered.
    """


@jobs.command("list")
@click.option(
    "--state", "states", multiple=True, type=click.Choice(_STATES), help="Only jobs in this state (repeatable)."
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(states: tuple[str, ...], limit: int | None, as_json: bool) -> None:
    """List jobs, newest first: id, state, provider, submitted and finished times, billed usage,
    where the video is stored, and the prompt."""
    from ..errors import ReelgenError

    _, journal = _journal(as_json)
    try:
        entries = journal.list(states=states or None, limit=limit)
    except ReelgenError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        click.echo(json.dumps([_to_json(entry) for entry in entries], indent=2))
        return
    if not entries:
        click.echo("no jobs" + (f" in state {', '.join(states)}" if states else ""))
        return
    for entry in entries:
        click.echo(
            "  ".join(
                (
                    entry.ref,
                    entry.state,
                    entry.provider,
                    _when(entry.submitted_at),
                    _when(entry.finished_at),
                    _usage(entry.usage or (entry.result.usage if entry.result else {})),
                    _location(entry),
                    json.dumps(_prompt(entry), ensure_ascii=False),
                )
            )
        )


@jobs.command()
@click.argument("job_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(job_id: str, as_json: bool) -> None:
    """Show everything the journal knows about job ID (no call to the provider)."""
    from .outcome import resume_command

    _, journal = _journal(as_json)
    entry = _entry(journal, job_id, as_json=as_json)
    if as_json:
        click.echo(json.dumps(_to_json(entry), indent=2))
        return
    rows: list[tuple[str, str]] = [
        ("id", entry.id),
        ("job id", entry.job_id or "- (the provider has not named the task)"),
        ("state", entry.state),
        ("provider", f"{entry.provider} ({entry.model})"),
        ("prompt", _prompt(entry, limit=None)),
        ("submitted", _when(entry.submitted_at)),
        ("finished", _when(entry.finished_at)),
        ("billed usage", _usage(entry.usage or (entry.result.usage if entry.result else {}))),
        ("stored", _location(entry)),
    ]
    if entry.result is not None:
        rows.append(("sha256", entry.result.sha256))
    if entry.error:
        rows.append(("error", entry.error))
    if entry.candidates:
        rows.append(("candidates", ", ".join(f"{entry.provider}:{task}" for task in entry.candidates)))
    if entry.owner is not None and entry.active:
        alive = "orphaned" if entry.orphaned() else "running"
        rows.append(("owner", f"pid {entry.owner.pid} on {entry.owner.host} ({alive})"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name + ':':<{width + 1}} {value}")
    if not entry.terminal:
        click.echo(f"collect it with: {resume_command(entry.ref)}", err=True)


@jobs.command()
@click.argument("job_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (the same as `generate --json`).")
def resume(job_id: str, as_json: bool) -> None:
    """Wait for job ID, download, store and cache its video; print what `reelgen generate` prints.

    An `unknown` job (its create never answered) is first looked for in the provider's task list;
    a `delivery_failed` one is delivered again from the provider's URL while it lasts.
    """
    from ..config import load_config
    from ..errors import ReelgenError
    from ..journal import validate_ref
    from .generate import check_durable_storage, print_result, run_reported

    # No journal needed: a job id the journal does not know is still polled, downloaded and stored.
    try:
        validate_ref(job_id)
        config = load_config()
        check_durable_storage(config)
    except ReelgenError as exc:
        fail(exc, as_json=as_json)

    async def run(on_event: Any) -> tuple[Job, VideoResult]:
        job = await _resumed(job_id, config, on_event)
        return job, await job.wait()

    _, result, shown = run_reported(run, as_json=as_json, job_id=job_id, config=config)
    print_result(result, as_json=as_json, shown_warnings=shown)


async def _resumed(job_id: str, config: Config, on_event: Any) -> Job:
    from .._pipeline import resume

    job: Any = resume(job_id, config=config, on_event=on_event)
    if inspect.isawaitable(job):
        job = await job
    return job  # type: ignore[no-any-return]


@jobs.command()
@click.argument("job_id", metavar="ID")
def cancel(job_id: str) -> None:
    """Ask the provider to stop job ID. Exit 0 when it stopped (and will not bill it), 4 when it
    could not (a running task usually cannot be stopped: it may finish and be billed)."""
    from ..errors import ReelgenError, ValidationError
    from .outcome import resume_command
    from .signals import Interrupted, run_interruptible

    config, journal = _journal(False)
    entry = _entry(journal, job_id, as_json=False)
    if entry.terminal:
        click.echo(f"job {entry.ref} is already {entry.state}: nothing to cancel")
        return
    if entry.state in ("delivering", "delivery_failed"):
        click.secho(
            f"job {entry.ref} already finished at the provider and is billed: nothing to cancel; "
            f"collect the video with: {resume_command(entry.ref)}",
            fg="yellow",
            err=True,
        )
        raise SystemExit(4)
    if entry.job_id is None:
        fail(
            ValidationError(
                f"job {entry.ref} has no task id yet ({entry.state}): the provider has not named a task to cancel; "
                f"find it first with: {resume_command(entry.ref)}",
                field="job_id",
            )
        )

    async def run() -> bool:
        job = await _resumed(entry.ref, config, None)
        return bool(await job.cancel())

    try:
        stopped = run_interruptible(run())
    except Interrupted as signal:
        click.secho(f"interrupted by {signal.name}: the cancel may not have reached the provider", err=True)
        raise SystemExit(signal.exit_code) from None
    except ReelgenError as exc:
        fail(exc)
    if stopped:
        click.echo(f"cancelled job {entry.ref}: the provider stopped it and will not bill it")
        return
    click.secho(
        f"the provider could not stop job {entry.ref} (a running task usually cannot be): it may finish and be "
        f"billed; collect the video with: {resume_command(entry.ref)}",
        fg="yellow",
        err=True,
    )
    raise SystemExit(4)
