"""Batches: many requests, checked and priced before anything is paid, run at the account's pace.

```
plan:  every row -> provider, validate, estimate      (problems listed, nothing paid)
run:   per provider, a window of governor concurrency + a small queue:
       budget check -> submit (journal, single-flight, permit) -> wait -> outcome line
```

* **Checked first.** `plan_batch` validates and prices every row offline; a batch with a
  bad row does not start (unless the caller drops the bad rows).
* **Crash-safe.** Each finished row is one line of the results file (`ResultsFile`,
  append-only, fsync'd). The job id of each submitted row goes to a second file beside it
  (`<results>.jobs`), so a rerun skips finished rows, *polls* rows whose job exists (never
  re-submits them), and runs the rest; the journal's single-flight covers the instant
  between a create and that line.
* **At the account's pace.** How many rows are in flight comes from the governor's limits
  (`reelgen.governor.limits_for`), not from a thread count: as many rows as the account
  may run, plus a small queue of rows that wait for a free slot *before* they are
  journaled (the pipeline's permit still enforces the limit).
* **Within budget.** With `max_cost`, a batch whose estimate exceeds it does not start, and
  no row is submitted once spend so far (billed for finished rows, estimated for rows in
  flight, scaled by the worst billed/estimated ratio seen) plus its own would exceed it.

The engine itself (row states, ETA, ledger, slots, interrupts) is `reelgen._batchrunner`.

`run_row(row, config)` is the work of one row, callable on its own (a queue worker runs
rows with it); `abatch`/`batch` yield `(row id, VideoResult or ReelgenError)` as rows end.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from ._resultsfile import ResultsFile
from .config import Config, load_config
from .contract import VideoRequest, VideoResult
from .errors import Cancelled, ConfigError, ProviderFailed, ReelgenError, ValidationError
from .events import Event
from .manifest import ManifestRow, RowProblem, rows_from_requests
from .pricing import Cost, billed_cost, estimate
from .provider import Provider

if TYPE_CHECKING:
    from .jobs import Job

__all__ = [
    "BatchPlan",
    "BatchProgress",
    "PlannedRow",
    "ResultsFile",
    "RowOutcome",
    "abatch",
    "batch",
    "io_threads",
    "plan_batch",
    "run_batch",
    "run_row",
]

log = logging.getLogger("reelgen.batches")

# -- outcomes --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RowOutcome:
    """How one row ended: a result, or an error (with the job it concerns, if any)."""

    id: str
    result: VideoResult | None = None
    error: ReelgenError | None = None
    job_id: str | None = None
    cost: Cost | None = None
    #: Seconds from the submit to the stored result (None when not known, e.g. a cache hit).
    elapsed: float | None = None
    tier: str | None = None

    @property
    def state(self) -> str:
        if self.result is not None:
            return "succeeded"
        if isinstance(self.error, ValidationError) and self.error.field == "max_cost":
            return "not_submitted"
        return "cancelled" if isinstance(self.error, Cancelled) else "failed"

    def to_line(self) -> dict[str, Any]:
        """The results-file line: id, state, job id, then the result's fields or the error's."""
        from .serialization import unstructure

        line: dict[str, Any] = {"id": self.id, "state": self.state, "job_id": self.job_id}
        if self.result is not None:
            line.update(unstructure(self.result))
        elif self.error is not None:
            line["error"] = type(self.error).__name__
            line["code"] = getattr(self.error, "code", None)
            line["message"] = str(self.error)
        line["cost"] = self.cost.to_dict() if self.cost is not None else None
        line["elapsed"] = self.elapsed
        line["tier"] = self.tier
        return line


# -- planning -----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PlannedRow:
    """A row that passed every local check, with its provider and price."""

    row: ManifestRow
    provider: Provider
    warnings: tuple[str, ...] = ()
    estimate: Cost | None = None
    tier: str | None = None


@attrs.frozen(kw_only=True)
class BatchPlan:
    rows: tuple[PlannedRow, ...]
    problems: tuple[RowProblem, ...]

    def total(self) -> dict[str, float]:
        """The estimate per currency (rows with a price; free rows count 0)."""
        totals: dict[str, float] = {}
        for planned in self.rows:
            cost = planned.estimate
            if cost is not None and cost.amount:
                totals[cost.currency] = totals.get(cost.currency, 0.0) + cost.amount
        return totals

    def unpriced(self) -> list[PlannedRow]:
        return [planned for planned in self.rows if planned.estimate is None]


def plan_batch(
    rows: Iterable[ManifestRow], *, config: Config, provider: str | Provider | None = None, strict: bool = False
) -> BatchPlan:
    """Check and price every row offline; nothing is sent anywhere."""
    from ._pipeline import validate
    from ._registry import provider_for_row

    providers: dict[tuple[str | None, str | None], Provider | ReelgenError] = {}
    planned: list[PlannedRow] = []
    problems: list[RowProblem] = []
    for row in rows:
        name = row.provider if row.provider is not None or row.account is not None else provider
        key = (name if isinstance(name, str) or name is None else name.name, row.account)
        if key not in providers:
            try:
                providers[key] = (
                    provider_for_row(name, row.account, config=config)
                    if name is None or isinstance(name, str)
                    else name
                )
            except ReelgenError as exc:
                providers[key] = exc
            else:
                if row.account is not None:
                    providers[key] = _own_account(providers, key, config=config)
        chosen = providers[key]
        if isinstance(chosen, ReelgenError):
            field = "account" if row.account is not None else "provider"
            problems.append(RowProblem(line=row.line, id=row.id, field=field, message=str(chosen)))
            continue
        try:
            warnings = validate(row.request, chosen, config=config, strict=strict)
        except ValidationError as exc:
            problems.append(RowProblem(line=row.line, id=row.id, field=exc.field, message=str(exc)))
            continue
        except ReelgenError as exc:
            problems.append(RowProblem(line=row.line, id=row.id, field=None, message=str(exc)))
            continue
        cost = estimate(row.request, chosen, config)
        planned.append(
            PlannedRow(
                row=row, provider=chosen, warnings=tuple(warnings), estimate=cost, tier=cost.tier if cost else None
            )
        )
    return BatchPlan(rows=tuple(planned), problems=tuple(problems))


def _own_account(
    providers: dict[tuple[str | None, str | None], Provider | ReelgenError],
    key: tuple[str | None, str | None],
    *,
    config: Config,
) -> Provider | ReelgenError:
    """The provider of account `key[1]`, or a ConfigError when it calls as an account the batch
    already uses under another name (two governors for one account's limits would trip its
    429s): the same endpoint and key, e.g. an environment variable that wins over a key file."""
    from ._registry import provider_for_row
    from .governor import account_for

    chosen = providers[key]
    assert not isinstance(chosen, ReelgenError)
    others: list[tuple[str | None, Provider | ReelgenError]] = [
        (account, other) for (_, account), other in providers.items() if (_, account) != key
    ]
    try:
        others.append((None, provider_for_row(chosen.name, None, config=config)))  # rows without an account
    except ReelgenError:
        pass
    try:
        mine = account_for(chosen).key
        for account, other in others:
            if isinstance(other, ReelgenError) or other.name != chosen.name or account_for(other).key != mine:
                continue
            where = f"account {account!r}" if account is not None else f"the [providers.{chosen.name}] settings"
            return ConfigError(
                f"account {key[1]!r} calls {chosen.name} with the same endpoint and key as {where}: one account "
                "has one set of limits; give it its own key (its own key variable or key file, and check that no "
                "environment variable overrides it)"
            )
    except ReelgenError:
        pass  # a missing key: the batch stops on it before any row, saying so
    return chosen


# -- one row --------------------------------------------------------------------------------------


async def run_row(
    row: ManifestRow,
    config: Config,
    *,
    provider: Provider | None = None,
    job_id: str | None = None,
    strict: bool = False,
    use_cache: bool = True,
    on_event: Callable[[Event], Any] | None = None,
    on_job: Callable[[str], None] | None = None,
) -> RowOutcome:
    """Run one row to its end and say how it ended (errors are outcomes, not raised).

    With `job_id` (a job this row already has), that job is polled and collected, never
    submitted again, unless the provider shows it was cancelled (then nothing was billed
    and the row is submitted afresh). `on_job` hears the job id as soon as the job exists.
    """
    from ._pipeline import resume
    from ._registry import provider_for_row

    chosen = provider or provider_for_row(row.provider, row.account, config=config)
    started = time.monotonic()
    current = job_id
    try:
        result: VideoResult | None = None
        if job_id is not None:
            try:
                result = await resume(job_id, config=config, provider=chosen, on_event=on_event).wait()
            except Cancelled as exc:
                if not exc.remote_cancelled:
                    raise
                log.info("row %s: job %s was cancelled at the provider; submitting it again", row.id, job_id)
        if result is None:

            def created(new_id: str) -> None:
                nonlocal current, started
                current, started = new_id, time.monotonic()
                if on_job is not None:
                    on_job(new_id)

            result = await _generate(
                row, chosen, config, strict=strict, use_cache=use_cache, on_event=on_event, on_job=created
            )
    except ReelgenError as exc:
        return RowOutcome(id=row.id, error=exc, job_id=current or getattr(exc, "job_id", None))
    cost = billed_cost(result, chosen, config, row.request)
    job_id_done = f"{result.provider}:{result.task_id}" if result.task_id else current
    elapsed = None if result.cached else time.monotonic() - started
    tier = cost.tier if cost is not None else None
    return RowOutcome(id=row.id, result=result, job_id=job_id_done, cost=cost, elapsed=elapsed, tier=tier)


async def _generate(
    row: ManifestRow,
    provider: Provider,
    config: Config,
    *,
    strict: bool,
    use_cache: bool,
    on_event: Callable[[Event], Any] | None,
    on_job: Callable[[str], None],
) -> VideoResult:
    """Submit and wait; once more when it adopted an orphan the provider proved was never created.

    A process killed between journaling a row and its create leaves a `submitting` entry;
    the next submit of the same request adopts it, the provider's task list shows no task
    (nothing was created or billed), the entry ends failed, and the row is submitted anew.
    """
    from ._pipeline import submit

    for attempt in (1, 2):
        adopted = False

        def watch(event: Event) -> Any:
            nonlocal adopted
            if event.kind == "attached" and event.data.get("why") == "adopted":
                adopted = True
            return on_event(event) if on_event is not None else None

        job: Job | None = None
        try:
            job = await submit(row.request, provider, config=config, strict=strict, use_cache=use_cache, on_event=watch)
            if job.id is not None:
                on_job(job.id)
            return await job.wait()
        except ProviderFailed:
            never_created = adopted and (job is None or job.task_id is None)
            if attempt == 2 or not never_created:
                raise
            log.info("row %s: the orphaned entry it adopted was never created; submitting it", row.id)
    raise AssertionError("unreachable")


# -- progress -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class BatchProgress:
    """Where a batch stands, for a person: counts, spend and an ETA."""

    total: int
    done: int
    failed: int
    #: Running at the provider (holding one of the account's slots).
    running: int
    #: Finished at the provider, being downloaded and stored (the slot is free again).
    delivering: int
    queued: int
    waiting: int
    #: Rows not started yet (including those about to ask for a slot).
    pending: int
    spent: float
    committed: float
    currency: str | None
    budget: float | None
    #: Seconds until every row is done, or None while a tier has no timing yet.
    eta: float | None
    #: "waiting for a slot: 5/5 in use", or the last retry's reason.
    note: str = ""
    #: Rows finished in earlier runs of the same batch (included in `done`/`failed`).
    previous: int = 0
    stopped: str = ""


async def run_batch(
    plan: BatchPlan,
    *,
    config: Config,
    results: str | Path | None = None,
    strict: bool = False,
    use_cache: bool = True,
    max_cost: float | None = None,
    on_update: Callable[[BatchProgress], None] | None = None,
    on_event: Callable[[str, Event], None] | None = None,
    interrupt: asyncio.Event | None = None,
) -> AsyncIterator[RowOutcome]:
    """Run a checked plan; yield each row's outcome as it ends (see the module docstring).

    Rows already in the `results` file are skipped. Setting `interrupt` stops submitting
    and cancels the rows in flight (they are not written: the next run continues them).
    """
    if plan.problems:
        raise ValidationError(
            f"{len(plan.problems)} row(s) are invalid; nothing was submitted:\n"
            + "\n".join(str(problem) for problem in plan.problems),
            field=plan.problems[0].field,
        )
    results_file = ResultsFile(results) if results is not None else None
    jobs_file = ResultsFile(Path(str(results) + ".jobs")) if results is not None else None
    from ._batchrunner import Runner, check_budget

    runner = Runner(
        plan,
        config=config,
        strict=strict,
        use_cache=use_cache,
        max_cost=max_cost,
        results=results_file,
        jobs=jobs_file,
        on_update=on_update,
        on_event=on_event,
    )
    try:
        remaining = BatchPlan(rows=tuple(runner.todo), problems=())
        check_budget(remaining, max_cost, runner.spent)
        main = asyncio.ensure_future(runner.run())
        watcher = asyncio.ensure_future(interrupt.wait()) if interrupt is not None else None
        if watcher is not None:

            def on_interrupt(done: asyncio.Future[Any]) -> None:
                if not done.cancelled():
                    runner.interrupt("interrupted")

            watcher.add_done_callback(on_interrupt)
        try:
            while True:
                outcome = await runner.outcomes.get()
                if outcome is None:
                    break
                yield outcome
            await main
        finally:
            if watcher is not None:
                watcher.cancel()
            if not main.done():
                runner.interrupt("stopped")
                await asyncio.gather(main, return_exceptions=True)
            for task in list(runner.tasks.values()):
                task.cancel()
        complete = all(state in ("succeeded", "failed") for state in runner.states.values())
        if complete and jobs_file is not None:
            jobs_file.path.unlink(missing_ok=True)
    finally:
        for handle in (results_file, jobs_file):
            if handle is not None:
                handle.close()
        if on_update is not None:
            on_update(runner.snapshot())


def io_threads(plan: BatchPlan, config: Config) -> int:
    """Threads for the blocking work of a batch's rows in flight (reading images, SQLite, SDK calls,
    downloads, MP4 checks): two a row, so one wave's deliveries never hold up the next wave's
    submits. For the default executor of a loop that runs the batch."""
    from ._batchrunner import window
    from .governor import account_for

    sizes = {account_for(planned.provider).key: window(planned.provider, config)[0] for planned in plan.rows}
    return 4 + 2 * sum(sizes.values())


# -- the Python face --------------------------------------------------------------------------------

Requests = Iterable[VideoRequest | tuple[str, VideoRequest] | ManifestRow]


async def abatch(
    requests: Requests,
    provider: str | Provider | None = None,
    *,
    config: Config | None = None,
    results: str | Path | None = None,
    strict: bool = False,
    use_cache: bool = True,
    max_cost: float | None = None,
    skip_invalid: bool = False,
    on_update: Callable[[BatchProgress], None] | None = None,
) -> AsyncIterator[tuple[str, VideoResult | ReelgenError]]:
    """Generate many videos; yield `(row id, VideoResult or ReelgenError)` as each row ends.

    `requests` are `VideoRequest`s (ids "1", "2", ...), `(id, request)` pairs or
    `ManifestRow`s. Every row is validated and priced before anything is submitted: an
    invalid row raises `ValidationError` listing every bad row (or is left out with
    `skip_invalid`); with `max_cost`, a batch whose estimate exceeds it raises
    `ValidationError` and nothing is submitted. `results` names a JSONL results file: rows
    already in it are not run again, so rerunning after a crash continues the batch.
    """
    config = config or load_config()
    plan = plan_batch(rows_from_requests(requests), config=config, provider=provider, strict=strict)
    if skip_invalid:
        plan = BatchPlan(rows=plan.rows, problems=())
    async for outcome in run_batch(
        plan, config=config, results=results, strict=strict, use_cache=use_cache, max_cost=max_cost, on_update=on_update
    ):
        yield outcome.id, (outcome.result if outcome.result is not None else outcome.error)  # type: ignore[misc]


def batch(
    requests: Requests,
    provider: str | Provider | None = None,
    *,
    config: Config | None = None,
    results: str | Path | None = None,
    strict: bool = False,
    use_cache: bool = True,
    max_cost: float | None = None,
    skip_invalid: bool = False,
    on_update: Callable[[BatchProgress], None] | None = None,
) -> Iterator[tuple[str, VideoResult | ReelgenError]]:
    """The synchronous twin of `abatch`: the batch runs on an event loop in a helper thread.

    Checking and pricing happen before the first item is returned, so a bad manifest
    raises here. Leaving the loop early (break, an exception, Ctrl-C) stops submitting
    and cancels the rows in flight.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("reelgen.batch() cannot run inside an event loop: use `reelgen.abatch(...)`")
    config = config or load_config()
    plan = plan_batch(rows_from_requests(requests), config=config, provider=provider, strict=strict)
    if skip_invalid:
        plan = BatchPlan(rows=plan.rows, problems=())
    if plan.problems:
        # Raised here, in the caller's thread, before anything starts.
        raise ValidationError(
            f"{len(plan.problems)} row(s) are invalid; nothing was submitted:\n"
            + "\n".join(str(problem) for problem in plan.problems),
            field=plan.problems[0].field,
        )
    items: queue.Queue[tuple[str, Any]] = queue.Queue()
    loop = asyncio.new_event_loop()
    loop.set_default_executor(ThreadPoolExecutor(io_threads(plan, config), thread_name_prefix="reelgen-batch"))
    stop = asyncio.Event()

    async def produce() -> None:
        try:
            async for outcome in run_batch(
                plan,
                config=config,
                results=results,
                strict=strict,
                use_cache=use_cache,
                max_cost=max_cost,
                on_update=on_update,
                interrupt=stop,
            ):
                items.put(("item", (outcome.id, outcome.result if outcome.result is not None else outcome.error)))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            items.put(("error", exc))
        else:
            items.put(("end", None))

    thread = threading.Thread(target=lambda: loop.run_until_complete(produce()), name="reelgen-batch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        if thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
            thread.join()
        loop.close()
