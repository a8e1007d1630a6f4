"""`reelgen worker`: Dramatiq workers for queued batches; and the `batch --queue` side that feeds them."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .errors import fail

if TYPE_CHECKING:
    from ..batches import BatchPlan
    from ..config import Config

__all__ = ["run_queued", "worker"]

#: Without a terminal, a line at least this often while following.
_HEARTBEAT = 30.0


@click.command()
@click.option(
    "--processes",
    "-p",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes [default: one per CPU].",
)
@click.option(
    "--threads",
    "-t",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Threads per process (each runs one short step at a time).",
)
def worker(processes: int | None, threads: int) -> None:
    """Run Dramatiq workers for `reelgen batch MANIFEST --queue` (needs REELGEN_REDIS_URL).

    Each row is worked in short steps (submit, then one poll at a time, then collect), so
    any worker can carry on any job; a worker that dies is replaced by the others, and
    the job journal makes sure nothing is paid twice. Stop with Ctrl-C or SIGTERM (the
    workers finish their current step).

    \b
    Example:
      REELGEN_REDIS_URL=redis://127.0.0.1:6379/0 reelgen worker --processes 4
    """
    from ..cluster import client_for, redis_settings
    from ..config import load_config
    from ..errors import ConfigError, ReelgenError

    try:
        config = load_config()
        settings = redis_settings(config)
        if settings is None:
            raise ConfigError("reelgen worker needs a Redis: set REELGEN_REDIS_URL or [cluster] redis = 'redis://...'")
        client_for(settings[0])
        try:
            import dramatiq  # noqa: F401 - only checking that it is installed
        except ImportError as exc:
            raise ConfigError(
                f"reelgen worker needs Dramatiq: pip install 'dramatiq[redis]' (the reelgen[workers] extra) ({exc})"
            ) from exc
    except ReelgenError as exc:
        fail(exc)
    arguments = [
        sys.executable,
        "-m",
        "dramatiq",
        "reelgen.cluster.tasks",
        "--processes",
        str(processes or os.cpu_count() or 1),
        "--threads",
        str(threads),
        "--queues",
        "reelgen",
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, arguments)


def _line_text(line: dict[str, Any]) -> str:
    if line.get("state") == "succeeded":
        return f"row {line['id']}: succeeded -> {line.get('video_url')}"
    return f"row {line['id']}: {line.get('state')} ({line.get('error')}: {line.get('message')})"


def run_queued(plan: BatchPlan, config: Config, results: Path, *, manifest: Path, wait: bool, as_json: bool) -> None:
    """Send the plan's unfinished rows to the workers; with `wait`, follow until the results file is complete."""
    from ..batches import ResultsFile
    from ..cluster.queued import batch_id, enqueue, follow, resender, state_for
    from ..errors import ReelgenError

    try:
        batch = batch_id(results)
        state = state_for(config, batch)
        out = ResultsFile(results)
        finished = {line["id"] for line in out.lines}
        rows = [planned.row.id for planned in plan.rows]
        sent = enqueue(plan, config, batch=batch, skip=finished)
    except ReelgenError as exc:
        fail(exc, as_json=as_json)
    pending = [row for row in rows if row not in finished]
    click.echo(
        f"batch {batch}: {sent} row(s) sent to the workers, {len(pending) - sent} already queued, "
        f"{len(finished)} already in {results}",
        err=True,
    )
    command = f"reelgen batch {manifest} --out {results} --queue"
    if not wait:
        click.echo(f"not waiting: follow it with `{command}` (it sends nothing twice)", err=True)
        if as_json:
            click.echo(json.dumps({"batch": batch, "sent": sent, "pending": len(pending), "results": str(results)}))
        out.close()
        return
    done = len(finished)
    last = time.monotonic()

    def on_line(line: dict[str, Any]) -> None:
        nonlocal done, last
        done += 1
        last = time.monotonic()
        click.echo(f"[{done}/{len(rows)}] {_line_text(line)}", err=True)

    def on_resend(row: str) -> None:
        click.echo(
            f"[{done}/{len(rows)}] row {row}: its next step is overdue (its messages were lost); sent again", err=True
        )

    resend = resender(plan, state, config, on_resend=on_resend)
    try:
        while not follow(state, out, rows, on_line=on_line, timeout=_HEARTBEAT, resend=resend):
            if time.monotonic() - last >= _HEARTBEAT:
                click.echo(f"[{done}/{len(rows)}] waiting for the workers ({len(rows) - done} row(s) left)", err=True)
                last = time.monotonic()
    except KeyboardInterrupt:
        click.echo(f"stopped following; the workers carry on. Follow again with `{command}`", err=True)
        out.close()
        sys.exit(130)
    except ReelgenError as exc:
        out.close()
        fail(exc, as_json=as_json)
    lines = out.lines
    out.close()
    failed = [line for line in lines if line.get("state") != "succeeded"]
    succeeded = len(lines) - len(failed)
    click.echo(f"batch {batch}: {succeeded} succeeded, {len(failed)} failed; results in {results}", err=True)
    if as_json:
        click.echo(json.dumps({"batch": batch, "rows": len(lines), "failed": len(failed), "results": str(results)}))
    if failed:
        sys.exit(4)
