"""`reelgen batch MANIFEST`: many generations from a JSONL or CSV file, resumable, within a budget."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .errors import fail

if TYPE_CHECKING:
    from ..batches import BatchPlan, RowOutcome
    from ..manifest import RowProblem

__all__ = ["batch", "default_results_path"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def default_results_path(manifest: Path) -> Path:
    """`shots.jsonl` -> `shots.results.jsonl`, beside the manifest."""
    return manifest.with_name(manifest.stem + ".results.jsonl")


def _problem_json(problem: RowProblem) -> dict[str, Any]:
    return {"line": problem.line, "id": problem.id, "field": problem.field, "message": problem.message}


def _refuse_invalid(problems: list[RowProblem], *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"invalid": [_problem_json(p) for p in problems], "submitted": 0}, indent=2))
    click.secho(f"{len(problems)} invalid row(s); nothing was submitted:", fg="red", err=True)
    for problem in problems:
        click.echo(f"  {problem}", err=True)
    click.echo("fix them, or run the valid rows only with --skip-invalid", err=True)
    sys.exit(2)


def _estimate_text(plan: BatchPlan) -> str:
    totals = plan.total()
    priced = ", ".join(f"{amount:.2f} {currency}" for currency, amount in sorted(totals.items())) or "0"
    text = f"estimate: {priced} for {len(plan.rows)} row(s)"
    unpriced = plan.unpriced()
    if unpriced:
        text += f" ({len(unpriced)} row(s) have no declared price)"
    sample = next((p.estimate for p in plan.rows if p.estimate is not None and p.estimate.amount), None)
    if sample is not None:
        text += f"; e.g. {sample.basis}"
    return text


def _continue_command(manifest: Path, out: Path, max_cost: float | None, skip_invalid: bool) -> str:
    parts = ["reelgen", "batch", str(manifest), "--out", str(out)]
    if max_cost is not None:
        parts += ["--max-cost", f"{max_cost:g}"]
    if skip_invalid:
        parts.append("--skip-invalid")
    return shlex.join(parts)


def _outcome_line(outcome: RowOutcome) -> str:
    from .generate import local_path

    if outcome.result is not None:
        where = local_path(outcome.result.video_url) or outcome.result.video_url
        cost = f" ({outcome.cost.amount:.2f} {outcome.cost.currency})" if outcome.cost and outcome.cost.amount else ""
        return f"row {outcome.id}: succeeded -> {where}{cost}"
    error = outcome.error
    code = getattr(error, "code", None)
    job = f" [job {outcome.job_id}]" if outcome.job_id else ""
    return f"row {outcome.id}: {outcome.state}: {type(error).__name__}{f' ({code})' if code else ''}: {error}{job}"


@click.command()
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results file (JSONL, one line per row) [default: MANIFEST's name + .results.jsonl, beside it].",
)
@click.option("--dry-run", is_flag=True, help="Validate every row and estimate the cost; submit nothing.")
@click.option("--skip-invalid", is_flag=True, help="Run the valid rows and list the invalid ones, instead of refusing.")
@click.option(
    "--max-cost",
    type=float,
    metavar="AMOUNT",
    help="Refuse to start when the estimate exceeds AMOUNT, and stop submitting before the spend would "
    "(in the rows' currency).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option(
    "--queue",
    is_flag=True,
    help="Send the rows to `reelgen worker` processes (Dramatiq on REELGEN_REDIS_URL) and follow them "
    "until the results file is complete.",
)
@click.option("--no-wait", is_flag=True, help="With --queue: return once the rows are sent.")
def batch(
    manifest: Path,
    out: Path | None,
    dry_run: bool,
    skip_invalid: bool,
    max_cost: float | None,
    as_json: bool,
    queue: bool = False,
    no_wait: bool = False,
) -> None:
    """Generate every row of MANIFEST (JSONL or CSV, one request per row) at the account's pace.

    Every row is validated and priced before anything is submitted. Each finished row is
    one line of the results file; running the same command again after a crash or an
    interruption skips finished rows, collects the ones already submitted (never paying
    for them twice) and runs the rest.

    \b
    Example:
      reelgen batch examples/batch/manifest.jsonl --dry-run
      reelgen batch examples/batch/manifest.jsonl --max-cost 5
    """
    from ..batches import BatchPlan, plan_batch
    from ..config import load_config
    from ..errors import ReelgenError, ValidationError
    from ..manifest import read_manifest
    from .generate import check_durable_storage

    try:
        if max_cost is not None and not (max_cost >= 0 and max_cost != float("inf")):
            raise ValidationError(f"--max-cost must be a finite amount >= 0, got {max_cost!r}", field="max_cost")
        config = load_config()
        rows, problems = read_manifest(manifest)
        plan = plan_batch(rows, config=config)
        problems = sorted([*problems, *plan.problems], key=lambda p: p.line)
        if problems and not skip_invalid:
            _refuse_invalid(problems, as_json=as_json)
        for problem in problems:
            click.secho(f"skipping invalid {problem}", fg="yellow", err=True)
        plan = BatchPlan(rows=plan.rows, problems=())
        click.echo(_estimate_text(plan), err=True)
        if dry_run:
            if as_json:
                summary = {
                    "rows": len(plan.rows),
                    "invalid": [_problem_json(p) for p in problems],
                    "estimate": plan.total(),
                    "unpriced": [p.row.id for p in plan.unpriced()],
                }
                click.echo(json.dumps(summary, indent=2))
            click.echo("dry run: nothing submitted", err=True)
            return
        check_durable_storage(config)
    except ReelgenError as exc:
        fail(exc, as_json=as_json)
    results = out if out is not None else default_results_path(manifest)
    if queue:
        from .._batchrunner import check_budget
        from .worker import run_queued

        try:
            # Workers run rows independently: the budget is checked against the whole manifest, up front.
            check_budget(plan, max_cost)
        except ReelgenError as exc:
            fail(exc, as_json=as_json)
        run_queued(plan, config, results, manifest=manifest, wait=not no_wait, as_json=as_json)
        return
    _run(plan, config, results, manifest=manifest, max_cost=max_cost, skip_invalid=skip_invalid, as_json=as_json)


def _run(
    plan: BatchPlan,
    config: Any,
    results: Path,
    *,
    manifest: Path,
    max_cost: float | None,
    skip_invalid: bool,
    as_json: bool,
) -> None:
    from ..batches import BatchProgress, io_threads, run_batch
    from ..errors import ReelgenError
    from .progress import BatchReporter

    reporter = BatchReporter()
    outcomes: list[RowOutcome] = []
    last: list[BatchProgress] = []
    received: list[int] = []

    def on_update(progress: BatchProgress) -> None:
        last[:] = [progress]
        reporter.on_update(progress)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(io_threads(plan, config), thread_name_prefix="reelgen-batch"))
        stop = asyncio.Event()
        work = asyncio.current_task()

        def on_signal(signum: int) -> None:
            received.append(signum)
            if len(received) == 1:
                reporter.note(f"{signal.Signals(signum).name}: stopping; cancelling what is still queued")
                stop.set()
            elif work is not None:
                work.cancel()  # a second signal: stop waiting for the cancels

        installed = []
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    loop.add_signal_handler(sig, on_signal, int(sig))
                    installed.append(sig)
        try:
            async for outcome in run_batch(
                plan,
                config=config,
                results=results,
                max_cost=max_cost,
                on_update=on_update,
                on_event=reporter.on_event,
                interrupt=stop,
            ):
                if (received and outcome.state == "cancelled") or outcome.state == "not_submitted":
                    continue
                outcomes.append(outcome)
                reporter.note(_outcome_line(outcome))
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    try:
        with reporter:
            asyncio.run(main())
    except asyncio.CancelledError:
        pass
    except ReelgenError as exc:
        fail(exc, as_json=as_json)
    progress = last[0] if last else None
    command = _continue_command(manifest, results, max_cost, skip_invalid)
    _summarize(progress, outcomes, results, command, received, as_json=as_json)


def _summarize(
    progress: Any, outcomes: list[Any], results: Path, command: str, received: list[int], *, as_json: bool
) -> None:
    done = progress.done if progress else 0
    failed = progress.failed if progress else 0
    total = progress.total if progress else 0
    left = total - done - failed
    if as_json:
        summary = {
            "results": str(results),
            "rows": total,
            "succeeded": done,
            "failed": failed,
            "not_run": left,
            "spent": round(progress.spent, 6) if progress else 0,
            "currency": progress.currency if progress else None,
            "stopped": progress.stopped if progress else "",
            "continue": command if left else None,
        }
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(str(results))
    spent = f"; spent {progress.spent:.2f} {progress.currency or ''}".rstrip() if progress and progress.currency else ""
    previous = f" ({progress.previous} from earlier runs)" if progress and progress.previous else ""
    click.echo(f"{done} succeeded, {failed} failed, {left} not run, of {total}{previous}{spent}", err=True)
    if received:
        name = signal.Signals(received[0]).name
        click.secho(
            f"interrupted by {name}: nothing more was submitted; jobs still queued were cancelled where the "
            "provider allows, jobs already running continue (and may be billed) and are collected when you "
            f"continue with: {command}",
            fg="yellow",
            err=True,
        )
        sys.exit(128 + received[0])
    if progress is not None and progress.stopped:
        click.secho(f"stopped: {progress.stopped}; continue with: {command}", fg="yellow", err=True)
    if failed or left:
        sys.exit(4)
