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
  (`reelgen.governor.limits_for`), not from a thread count: the pipeline waits for a
  permit, the batch only keeps that many rows (plus a small queue) ready.
* **Within budget.** With `max_cost`, a batch whose estimate exceeds it does not start, and
  no row is submitted once spend so far (billed for finished rows, estimated for rows in
  flight) plus its own estimate would exceed it.

`run_row(row, config)` is the work of one row, callable on its own (a queue worker runs
rows with it); `abatch`/`batch` yield `(row id, VideoResult or ReelgenError)` as rows end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from .config import Config, load_config
from .contract import VideoRequest, VideoResult
from .errors import Cancelled, ProviderFailed, ReelgenError, ValidationError
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
    "plan_batch",
    "run_batch",
    "run_row",
]

log = logging.getLogger("reelgen.batches")

RowState = Literal["pending", "starting", "waiting", "queued", "running", "delivering", "succeeded", "failed"]
#: Rows kept ready beyond the account's concurrency, so a freed slot is taken at once.
_QUEUE_EXTRA = 2
#: Rows in flight when the account declares no concurrency limit.
_UNLIMITED_WINDOW = 16
#: Seconds between looks at the account's free slots while rows queue in the batch.
_SLOT_CHECK = 0.05


# -- outcomes and the results file ------------------------------------------------------------


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


class ResultsFile:
    """A JSONL file written one whole line at a time (O_APPEND, fsync), read back on a rerun.

    A crash can leave at most one torn last line; opening the file drops it, so what stays
    is always a valid prefix.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._lines = self._read_and_repair()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def _read_and_repair(self) -> list[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        if end < len(data):
            # A torn last line: the write it belongs to never finished.
            with self.path.open("r+b") as handle:
                handle.truncate(end)
        lines = []
        for raw in data[:end].splitlines():
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and isinstance(value.get("id"), str):
                lines.append(value)
        return lines

    @property
    def lines(self) -> list[dict[str, Any]]:
        return list(self._lines)

    def append(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._fd, data)
            os.fsync(self._fd)
            self._lines.append(line)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


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
    from .pipeline import validate
    from .registry import get_provider

    providers: dict[str | None, Provider | ReelgenError] = {}
    planned: list[PlannedRow] = []
    problems: list[RowProblem] = []
    for row in rows:
        name = row.provider if row.provider is not None else provider
        key = name if isinstance(name, str) or name is None else name.name
        if key not in providers:
            try:
                providers[key] = get_provider(name, config=config) if name is None or isinstance(name, str) else name
            except ReelgenError as exc:
                providers[key] = exc
        chosen = providers[key]
        if isinstance(chosen, ReelgenError):
            problems.append(RowProblem(line=row.line, id=row.id, field="provider", message=str(chosen)))
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
    from .pipeline import resume
    from .registry import get_provider

    chosen = provider or get_provider(row.provider, config=config)
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
    from .pipeline import submit

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


class _Eta:
    """Seconds a row takes, learned per (provider, model, tier) from rows that finished."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str | None], list[float]] = {}

    def learn(self, provider: str, tier: str | None, duration: float, elapsed: float) -> None:
        self._seen.setdefault((provider, tier), []).append(elapsed / max(duration, 1.0))

    def row_seconds(self, provider: str, tier: str | None, duration: float) -> float | None:
        seen = self._seen.get((provider, tier))
        return statistics.median(seen) * max(duration, 1.0) if seen else None


# -- the whole batch ------------------------------------------------------------------------------


def _window(provider: Provider, config: Config) -> tuple[int, int | None]:
    """(rows kept in flight, the account's concurrency) from the governor's limits."""
    from .governor import limits_for

    concurrency = limits_for(provider, config).concurrency
    if concurrency is None:
        return _UNLIMITED_WINDOW, None
    return concurrency + _QUEUE_EXTRA, concurrency


class _Runner:
    def __init__(
        self,
        plan: BatchPlan,
        *,
        config: Config,
        strict: bool,
        use_cache: bool,
        max_cost: float | None,
        results: ResultsFile | None,
        jobs: ResultsFile | None,
        on_update: Callable[[BatchProgress], None] | None,
        on_event: Callable[[str, Event], None] | None,
    ) -> None:
        self.plan = plan
        self.config = config
        self.strict = strict
        self.use_cache = use_cache
        self.max_cost = max_cost
        self.results = results
        self.jobs_file = jobs
        self.on_update = on_update
        self.on_event = on_event
        self.states: dict[str, RowState] = {}
        self.outcomes: asyncio.Queue[RowOutcome | None] = asyncio.Queue()
        self.eta = _Eta()
        self.spent = 0.0
        self.in_flight: dict[str, float] = {}
        self.note = ""
        self.stopped = ""
        self.previous = 0
        self.currency = next((p.estimate.currency for p in plan.rows if p.estimate and p.estimate.currency), None)
        self.tasks: dict[str, asyncio.Task[RowOutcome]] = {}
        #: Rows whose job the provider stopped on an interrupt, and rows whose job runs on.
        self.cancelled_remote: set[str] = set()
        self.left_running: set[str] = set()
        self._windows: dict[str, tuple[int, int | None]] = {}
        #: The worst billed/estimated cost ratio seen (1: bills matched the estimates).
        self._price_ratio = 1.0
        self._budget_stopped = False
        #: Per provider, rows past `_slot_free` whose job does not exist yet.
        self._admitted: dict[str, int] = {}
        self._admitting: set[str] = set()
        self._stopping = False
        done, self.known_jobs = self._previous()
        self.todo = [planned for planned in plan.rows if planned.row.id not in done]
        for planned in plan.rows:
            self.states[planned.row.id] = "pending"
        for row_id, state in done.items():
            if row_id in self.states:
                self.states[row_id] = state

    def _previous(self) -> tuple[dict[str, RowState], dict[str, str]]:
        """Rows finished in earlier runs (and what they cost), and job ids of rows in flight then."""
        done: dict[str, RowState] = {}
        by_id = {planned.row.id: planned for planned in self.plan.rows}
        for line in self.results.lines if self.results is not None else []:
            row_id = line["id"]
            if row_id in done or row_id not in by_id or line.get("state") not in ("succeeded", "failed"):
                continue
            done[row_id] = "succeeded" if line["state"] == "succeeded" else "failed"
            cost = line.get("cost")
            if isinstance(cost, dict) and isinstance(cost.get("amount"), (int, float)):
                self.spent += float(cost["amount"])
            planned = by_id[row_id]
            if isinstance(line.get("elapsed"), (int, float)):
                self.eta.learn(planned.provider.name, line.get("tier"), planned.row.request.duration, line["elapsed"])
        self.previous = len(done)
        jobs: dict[str, str] = {}
        for line in self.jobs_file.lines if self.jobs_file is not None else []:
            if isinstance(line.get("job_id"), str):
                jobs[line["id"]] = line["job_id"]
        return done, jobs

    # -- progress ---------------------------------------------------------------------------------

    def snapshot(self) -> BatchProgress:
        counts = dict.fromkeys(("pending", "starting", "waiting", "queued", "running", "delivering"), 0)
        done = failed = 0
        for state in self.states.values():
            if state == "succeeded":
                done += 1
            elif state == "failed":
                failed += 1
            else:
                counts[state] += 1
        return BatchProgress(
            total=len(self.states),
            done=done,
            failed=failed,
            running=counts["running"],
            delivering=counts["delivering"],
            queued=counts["queued"],
            waiting=counts["waiting"],
            pending=counts["pending"] + counts["starting"],
            spent=self.spent,
            committed=self.spent + sum(self.in_flight.values()),
            currency=self.currency,
            budget=self.max_cost,
            eta=self._eta(),
            note=self.note,
            previous=self.previous,
            stopped=self.stopped,
        )

    def _eta(self) -> float | None:
        by_provider: dict[str, list[float]] = {}
        limits: dict[str, int] = {}
        for planned in self.plan.rows:
            state = self.states[planned.row.id]
            if state in ("succeeded", "failed"):
                continue
            name = planned.provider.name
            seconds = self.eta.row_seconds(name, planned.tier, planned.row.request.duration)
            if seconds is None:
                return None
            by_provider.setdefault(name, []).append(seconds)
            limits.setdefault(name, self._window(planned.provider)[1] or _UNLIMITED_WINDOW)
        if not by_provider:
            return 0.0
        return max(sum(times) / limits[name] for name, times in by_provider.items())

    def _window(self, provider: Provider) -> tuple[int, int | None]:
        if provider.name not in self._windows:
            self._windows[provider.name] = _window(provider, self.config)
        return self._windows[provider.name]

    def _update(self) -> None:
        if self.on_update is not None:
            try:
                self.on_update(self.snapshot())
            except Exception:
                log.exception("batch progress callback failed")

    def _row_event(self, row_id: str) -> Callable[[Event], None]:
        def observe(event: Event) -> None:
            data = event.data
            before = self.states.get(row_id)
            if event.kind == "waiting" and data.get("reason") == "query_rate":
                pass  # a running row pacing its status queries: still running
            elif event.kind == "waiting":
                self.states[row_id] = "waiting"
                in_use, limit = data.get("in_use"), data.get("limit")
                what = {"slot": "a slot", "submit_rate": "the submit rate", "query_rate": "the query rate"}
                self.note = f"waiting for {what.get(str(data.get('reason')), data.get('reason'))}" + (
                    f": {in_use}/{limit} in use" if in_use is not None and limit is not None else ""
                )
            elif event.kind in ("submitted", "attached"):
                self.states[row_id] = "queued"
            elif event.kind == "status" and data.get("state") in ("queued", "running"):
                self.states[row_id] = data["state"]
            elif event.kind == "progress" and data.get("phase") == "downloading":
                self.states[row_id] = "delivering"
            elif event.kind == "cancelled" and self._stopping:
                (self.cancelled_remote if data.get("remote_cancelled") else self.left_running).add(row_id)
            elif event.kind == "retrying":
                self.note = f"row {row_id}: retrying {data.get('step')} ({data.get('reason')})"
            if self.on_event is not None:
                try:
                    self.on_event(row_id, event)
                except Exception:
                    log.exception("batch event callback failed")
            if self.states.get(row_id) != before or event.kind == "retrying":
                self._update()

        return observe

    # -- running ----------------------------------------------------------------------------------

    def _over_budget(self, planned: PlannedRow) -> bool:
        """Would submitting `planned` take the spend past the budget?

        Spend is what finished rows were billed plus what rows in flight will cost; both are
        estimates scaled by the worst billed/estimated ratio seen so far, so a batch priced
        too low (prices went up, the provider bills more than it declared) stops as soon
        as a bill shows it.
        """
        if self.max_cost is None:
            return False
        ratio = self._price_ratio
        cost = planned.estimate.amount if planned.estimate is not None else 0.0
        committed = self.spent + ratio * sum(self.in_flight.values())
        return committed + ratio * cost > self.max_cost + 1e-9

    def _stop_for_budget(self, planned: PlannedRow) -> RowOutcome:
        self._budget_stopped = True
        money = f"{self.max_cost:g} {self.currency or ''}".strip()
        self.stopped = f"budget: submitting row {planned.row.id} could take the spend past {money}"
        return RowOutcome(
            id=planned.row.id,
            error=ValidationError(f"{self.stopped}; not submitted", field="max_cost"),
        )

    def _admitted_done(self, planned: PlannedRow) -> None:
        if planned.row.id in self._admitting:
            self._admitting.discard(planned.row.id)
            self._admitted[planned.provider.name] -= 1

    def _job_created(self, planned: PlannedRow, job_id: str) -> None:
        self._admitted_done(planned)
        self._record_job(planned.row.id, job_id)

    def _record_job(self, row_id: str, job_id: str) -> None:
        if self.jobs_file is not None and self.known_jobs.get(row_id) != job_id:
            self.known_jobs[row_id] = job_id
            self.jobs_file.append({"id": row_id, "job_id": job_id})

    async def _slot_free(self, planned: PlannedRow) -> None:
        """Wait here, before the row is journaled, until the account has a free slot.

        The pipeline's permit is what enforces the limit; waiting for it with a journaled
        `submitting` entry would leave, after a crash, entries nobody can prove were never
        sent. So the rows queued beyond the limit wait here, where a crash costs nothing.
        """
        from .governor import account_for, get_governor

        _, limit = self._window(planned.provider)
        if limit is None:
            return
        governor = get_governor(self.config)
        account = account_for(planned.provider)
        row_id = planned.row.id
        while not self._stopping:
            # Rows let through here whose create has not happened yet count as in use.
            in_use = await governor.in_use(account) + self._admitted.get(planned.provider.name, 0)
            if in_use < limit:
                self._admitted[planned.provider.name] = self._admitted.get(planned.provider.name, 0) + 1
                self._admitting.add(row_id)
                return
            if self.states.get(row_id) != "waiting":
                self.states[row_id] = "waiting"
                self.note = f"waiting for a slot: {in_use}/{limit} in use"
                self._update()
            await asyncio.sleep(_SLOT_CHECK)

    async def _one(self, planned: PlannedRow) -> RowOutcome:
        row_id = planned.row.id
        self.states[row_id] = "starting"
        self._update()
        job_id = self.known_jobs.get(row_id)
        try:
            if job_id is None:
                await self._slot_free(planned)
                if self._stopping:
                    raise asyncio.CancelledError
                # Checked at the last moment, with every bill that arrived while this row waited.
                if self._budget_stopped or self._over_budget(planned):
                    return self._stop_for_budget(planned)
            self.in_flight[row_id] = planned.estimate.amount if planned.estimate is not None else 0.0
            outcome = await run_row(
                planned.row,
                self.config,
                provider=planned.provider,
                job_id=job_id,
                strict=self.strict,
                use_cache=self.use_cache,
                on_event=self._row_event(row_id),
                on_job=lambda new_id: self._job_created(planned, new_id),
            )
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Interrupted by us: an outcome that is not final (the next run continues the row).
            known = self.known_jobs.get(row_id)
            return RowOutcome(
                id=row_id,
                error=Cancelled(f"row {row_id} was interrupted", job_id=known, remote_cancelled=False),
                job_id=known,
            )
        finally:
            self._admitted_done(planned)
            self.in_flight.pop(row_id, None)
        if outcome.tier is None and planned.tier is not None:
            outcome = attrs.evolve(outcome, tier=planned.tier)
        return outcome

    def _finish(self, planned: PlannedRow, outcome: RowOutcome) -> None:
        row_id = planned.row.id
        interrupted = self._stopping and isinstance(outcome.error, Cancelled)
        if interrupted or outcome.state == "not_submitted":
            # Stopped by us: not a final state; the next run picks it up (or submits it afresh).
            self.states[row_id] = "pending"
        else:
            self.states[row_id] = "succeeded" if outcome.result is not None else "failed"
            if outcome.cost is not None:
                self.spent += outcome.cost.amount
                estimated = planned.estimate.amount if planned.estimate is not None else 0.0
                if estimated > 0 and outcome.cost.amount > 0:
                    self._price_ratio = max(self._price_ratio, outcome.cost.amount / estimated)
            if outcome.elapsed is not None:
                self.eta.learn(planned.provider.name, outcome.tier, planned.row.request.duration, outcome.elapsed)
            if self.results is not None:
                self.results.append(outcome.to_line())
        self._update()

    async def _worker(self, rows: deque[PlannedRow]) -> None:
        while rows and not self._stopping and not self._budget_stopped:
            planned = rows.popleft()
            task = asyncio.ensure_future(self._one(planned))
            self.tasks[planned.row.id] = task
            try:
                outcome = await task
            finally:
                self.tasks.pop(planned.row.id, None)
            self._finish(planned, outcome)
            await self.outcomes.put(outcome)

    def interrupt(self, why: str) -> None:
        """Stop submitting; cancel rows in flight (the provider stops what it can; the rest runs on)."""
        if self._stopping:
            return
        self._stopping = True
        self.stopped = why
        for task in list(self.tasks.values()):
            task.cancel()
        self._update()

    async def run(self) -> None:
        groups: dict[str, deque[PlannedRow]] = {}
        providers: dict[str, Provider] = {}
        for planned in self.todo:
            groups.setdefault(planned.provider.name, deque()).append(planned)
            providers[planned.provider.name] = planned.provider
        workers = []
        for name, rows in groups.items():
            size, _ = self._window(providers[name])
            workers += [asyncio.ensure_future(self._worker(rows)) for _ in range(min(size, len(rows)))]
        self._update()
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self.outcomes.put(None)


def _check_budget(plan: BatchPlan, max_cost: float | None, spent: float = 0.0) -> None:
    if max_cost is None:
        return
    unpriced = plan.unpriced()
    if unpriced:
        ids = ", ".join(p.row.id for p in unpriced[:5])
        raise ValidationError(
            f"--max-cost needs a price for every row; {len(unpriced)} row(s) have none ({ids}): "
            "declare one in [pricing.NAME] or drop --max-cost",
            field="max_cost",
        )
    totals = plan.total()
    if len(totals) > 1:
        raise ValidationError(
            f"the rows are priced in {', '.join(sorted(totals))}; a budget is in one currency: "
            "run one batch per currency",
            field="max_cost",
        )
    total = sum(totals.values())
    if spent + total > max_cost + 1e-9:
        currency = next(iter(totals), "")
        raise ValidationError(
            f"the estimate ({_money(total, currency)} for {len(plan.rows)} rows"
            + (f", plus {_money(spent, currency)} already spent" if spent else "")
            + f") exceeds --max-cost {max_cost:g}: raise it or run fewer rows",
            field="max_cost",
        )


def _money(amount: float, currency: str) -> str:
    return f"{amount:.4g} {currency}".strip()


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
    runner = _Runner(
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
        _check_budget(remaining, max_cost, runner.spent)
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
