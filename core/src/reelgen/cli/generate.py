"""`reelgen generate`, and how a finished generation is printed (shared with `reelgen jobs resume`)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import click

from .errors import fail, interrupted

if TYPE_CHECKING:
    from ..config import Config
    from ..contract import VideoResult
    from ..jobs import Job

__all__ = ["check_budget", "check_durable_storage", "generate", "print_result", "seconds_overrides"]


def _options(pairs: tuple[str, ...], provider: str) -> dict[str, dict[str, Any]]:
    from ..config import parse_value

    options: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE (e.g. audio=false)", param_hint="--option")
        namespace, dot, name = key.strip().rpartition(".")
        options.setdefault(namespace if dot else provider, {})[name] = parse_value(raw.strip())
    return options


def seconds_overrides(**flags: float | None) -> dict[str, float]:
    """Config overrides from `--deadline`/`--queue-timeout`; a value that is not finite and > 0 is a ValidationError."""
    from ..errors import ValidationError

    overrides: dict[str, float] = {}
    for name, value in flags.items():
        if value is None:
            continue
        if not (math.isfinite(value) and value > 0):
            flag = "--" + name.replace("_", "-")
            raise ValidationError(
                f"{flag} must be a finite number of seconds greater than 0, got {value!r}", field=name
            )
        overrides[name] = value
    return overrides


def check_durable_storage(config: Config) -> None:
    """Refuse, before anything is paid for, storage that does not outlive the process (`memory://`)."""
    from ..errors import ConfigError

    try:
        from ..builtins.storage import is_durable
    except ImportError:  # pragma: no cover - storage without the helper: only memory:// is known volatile

        def is_durable(url: str) -> bool:
            return not url.strip().lower().startswith("memory:")

    url = config.storage.url
    if not is_durable(url):
        raise ConfigError(
            f"storage.url {url!r} is not durable: the video you pay for would vanish when this command exits; "
            "set storage.url (or REELGEN_STORAGE_URL) to a folder or a lasting fsspec URL such as s3://bucket/prefix"
        )


def check_budget(request: Any, provider: str, config: Config, max_cost: float) -> None:
    """`--max-cost`: refuse, before anything is sent, a request whose estimate exceeds the budget (or has none)."""
    from .._registry import get_provider
    from ..errors import ValidationError
    from ..pricing import estimate

    if not (math.isfinite(max_cost) and max_cost >= 0):
        raise ValidationError(f"--max-cost must be a finite amount >= 0, got {max_cost!r}", field="max_cost")
    cost = estimate(request, get_provider(provider, config=config), config)
    if cost is None:
        raise ValidationError(
            f"--max-cost: {provider} declares no price for this request; declare one in [pricing.{provider}] "
            "or drop --max-cost",
            field="max_cost",
        )
    if cost.amount > max_cost + 1e-9:
        raise ValidationError(
            f"the estimate {cost.amount:.4g} {cost.currency} ({cost.basis}) exceeds --max-cost {max_cost:g}; "
            "nothing was submitted",
            field="max_cost",
        )


def local_path(url: str) -> str | None:
    """The local file behind a `file://` URL or a bare path, else None."""
    from urllib.parse import unquote, urlparse

    if url.startswith("file://"):
        return unquote(urlparse(url).path)
    if "://" not in url:
        return url
    return None


def print_result(result: VideoResult, *, as_json: bool, shown_warnings: frozenset[str] = frozenset()) -> None:
    """stdout: the stored file's path (local) or URL, or the result as JSON; stderr: warnings and a summary."""
    from ..serialization import unstructure

    for warning in result.warnings:
        if warning not in shown_warnings:
            click.secho(f"warning: {warning}", fg="yellow", err=True)
    if as_json:
        click.echo(json.dumps(unstructure(result), indent=2))
        return
    click.echo(local_path(result.video_url) or result.video_url)
    cached = " (from cache)" if result.cached else ""
    click.echo(f"{result.duration:g}s {result.fps:g}fps {result.size} seed={result.seed}{cached}", err=True)


def _check_output(output: str | None) -> None:
    from pathlib import Path

    from ..errors import ValidationError

    if output is None:
        return
    path = Path(output).expanduser()
    if path.exists() or path.is_symlink():
        raise ValidationError(f"--output {output!r} already exists; reelgen never overwrites a file", field="output")
    if not path.parent.is_dir():
        raise ValidationError(f"--output {output!r}: the folder {str(path.parent)!r} does not exist", field="output")


@click.command()
@click.argument("image", required=False)
@click.option("--prompt", "-p", required=True, help="What the video shows.")
@click.option("--negative-prompt", help="What to avoid.")
@click.option("--duration", type=float, help="Seconds.  [default: the provider's, e.g. 5]")
@click.option("--fps", type=float, help="Frames per second wanted.  [default: the provider's, e.g. 30]")
@click.option("--size", help="W*H or WxH, in pixels.  [default: the provider's, e.g. 1280*720]")
@click.option("--seed", type=int, help="Seed (the provider picks and reports one if omitted).")
@click.option("--motion-strength", type=float, help="0.0 to 1.0, where the provider supports it.")
@click.option("--provider", help="Provider name (default: REELGEN_PROVIDER or reelgen.toml).")
@click.option(
    "--option",
    "-o",
    "option_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Provider option, e.g. audio=false or bailian_wan.resolution=720P (repeatable).",
)
@click.option("--strict", is_flag=True, help="Fail instead of warning when the provider cannot honour the request.")
@click.option(
    "--no-cache",
    is_flag=True,
    help="Ask for a new take: neither read nor write the result cache, and do not join an identical job "
    "in flight (a new task is paid for).",
)
@click.option(
    "--deadline",
    type=float,
    metavar="SECONDS",
    help="Bound every wait (slot, submit, queue, polls, download, store); nothing is submitted after it, "
    "and the remote job is cancelled where the provider allows [default: config deadline].",
)
@click.option(
    "--queue-timeout",
    type=float,
    metavar="SECONDS",
    help="Cancel the job if the provider has not started running it after this many seconds.",
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="Submit, print the job id and exit 0; collect the video later with `reelgen jobs resume ID` "
    "(a cached result prints as usual).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Submit even though an identical earlier request's create ended ambiguously (an unresolved "
    "`unknown` job, which may be billed too).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Also copy the stored video to PATH (an existing file is never overwritten).",
)
@click.option(
    "--max-cost",
    type=float,
    metavar="AMOUNT",
    help="Refuse to submit when the estimated cost exceeds AMOUNT (in the provider's currency).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def generate(
    image: str | None,
    prompt: str,
    negative_prompt: str | None,
    duration: float | None,
    fps: float | None,
    size: str | None,
    seed: int | None,
    motion_strength: float | None,
    provider: str | None,
    option_pairs: tuple[str, ...],
    strict: bool,
    no_cache: bool,
    deadline: float | None,
    queue_timeout: float | None,
    no_wait: bool,
    force: bool,
    output: str | None,
    max_cost: float | None,
    as_json: bool,
) -> None:
    """Generate a video from IMAGE (a path or URL) and a prompt, and store it durably.

    \b
    Example:
      reelgen generate photo.jpg --prompt "waves roll in at dusk" --duration 5 --size 1280*720
    """
    from .._registry import resolve_provider_name
    from ..config import load_config
    from ..contract import VideoRequest
    from ..errors import ReelgenError

    if no_wait and output is not None:
        raise click.UsageError("--output needs the finished video: it cannot be combined with --no-wait")
    try:
        overrides: dict[str, Any] = seconds_overrides(deadline=deadline, queue_timeout=queue_timeout)
        if provider is not None:
            overrides["provider"] = provider
        config = load_config(overrides=overrides)
        chosen = resolve_provider_name(provider, config)
        check_durable_storage(config)
        _check_output(output)
        # Left out, duration/fps/size take the provider's declared defaults (at the core's gate).
        sizes: dict[str, Any] = {"duration": duration, "fps": fps, "size": size}
        given = {name: value for name, value in sizes.items() if value is not None}
        request = VideoRequest(
            prompt=prompt,
            negative_prompt=negative_prompt,
            **given,
            seed=seed,
            reference_image=image,
            motion_strength=motion_strength,
            options=_options(option_pairs, chosen),
        )
        if max_cost is not None:
            check_budget(request, chosen, config, max_cost)
    except ReelgenError as exc:
        fail(exc, as_json=as_json)

    async def run(on_event: Any) -> tuple[Job, VideoResult | None]:
        from .._pipeline import submit

        extra: dict[str, Any] = {"force": True} if force else {}
        job = await submit(
            request, chosen, config=config, strict=strict, use_cache=not no_cache, on_event=on_event, **extra
        )
        if no_wait and not job.done:
            return job, None
        return job, await job.wait()

    job, result, shown = run_reported(run, as_json=as_json, config=config)
    if result is None:
        _print_submitted(job, as_json=as_json)
        return
    if output is not None:
        _copy_output(result, output, as_json=as_json, options=dict(config.storage.options))
    print_result(result, as_json=as_json, shown_warnings=shown)
    _print_cost(result, request, chosen, config)


def _print_cost(result: VideoResult, request: Any, provider: str, config: Config) -> None:
    """stderr: what the provider billed for this take (from its usage) and what that costs."""
    from .._registry import get_provider
    from ..pricing import billed_cost

    cost = billed_cost(result, get_provider(provider, config=config), config, request)
    if cost is not None and cost.currency:
        click.echo(f"billed: {cost.amount:.4g} {cost.currency}: {cost.basis}", err=True)


def _entry_state(tracker: Any, config: Config | None) -> str | None:
    """The journal's state of an entry the provider has not named a task for (None if unknown)."""
    if config is None or tracker.job_id is not None or tracker.entry_id is None:
        return None
    try:
        from ..journal import get_journal

        journal = get_journal(config)
        entry = journal.get(tracker.entry_id) if journal is not None else None
    except Exception:  # noqa: BLE001 - the message then says what is certain: a task may exist
        return None
    return entry.state if entry is not None else None


def run_reported(
    run: Any, *, as_json: bool, job_id: str | None = None, config: Config | None = None
) -> tuple[Any, Any, frozenset[str]]:
    """Run `run(on_event)` with progress on stderr, signals handled and failures reported.

    `job_id` is the job being resumed, if any. Returns `run`'s (job, result) pair and the
    warnings already printed on the way.
    """
    from ..errors import ReelgenError
    from .outcome import JobTracker, tee
    from .progress import ProgressReporter
    from .signals import Interrupted, run_interruptible

    tracker = JobTracker()
    if job_id is not None:
        tracker.resuming(job_id)
    reporter = ProgressReporter()
    warnings = _WarningPrinter()
    try:
        with reporter:
            job, result = run_interruptible(run(tee(tracker, warnings, reporter)))
    except Interrupted as signal:
        interrupted(signal, tracker, as_json=as_json, entry_state=_entry_state(tracker, config))
    except ReelgenError as exc:
        fail(exc, as_json=as_json, tracker=tracker)
    return job, result, frozenset(warnings.shown)


class _WarningPrinter:
    """Prints each warning the core announces before the submit, so the user sees it before paying."""

    def __init__(self) -> None:
        self.shown: set[str] = set()

    def __call__(self, event: Any) -> None:
        warning = event.data.get("message") if event.kind == "warning" else None
        if warning and warning not in self.shown:
            self.shown.add(str(warning))
            click.secho(f"warning: {warning}", fg="yellow", err=True)


def _print_submitted(job: Job, *, as_json: bool) -> None:
    from .outcome import resume_command

    job_id = job.id
    assert job_id is not None
    command = resume_command(job_id)
    if as_json:
        click.echo(json.dumps({"job_id": job_id, "resume": command}, indent=2))
    else:
        click.echo(job_id)
    click.echo(f"submitted; collect the video with: {command}", err=True)


def _copy_output(result: VideoResult, output: str, *, as_json: bool, options: dict[str, Any]) -> None:
    from ..errors import StorageError
    from .output import copy_video

    try:
        copy_video(result, output, options=options)
    except StorageError as exc:
        fail(exc, as_json=as_json)
    if not as_json:
        click.echo(f"copied to {output}", err=True)
