"""How a batch runs: per provider, a window of rows at the governor's pace, within a budget.

The private engine of `reelgen.batches.run_batch`: row states for progress, the ETA learned
per provider and tier, the budget ledger, rows waiting for a slot before they are
journaled, and the interrupt (see `reelgen.batches` for the promises).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import attrs

from ._resultsfile import ResultsFile
from .batches import BatchPlan, BatchProgress, PlannedRow, RowOutcome, run_row
from .config import Config
from .errors import Cancelled, ValidationError
from .events import Event
from .provider import Provider

if TYPE_CHECKING:
    from .journal import Journal

__all__ = ["Runner", "check_budget", "window"]

log = logging.getLogger("reelgen.batches")

RowState = Literal["pending", "starting", "waiting", "queued", "running", "delivering", "succeeded", "failed"]
#: Rows kept ready beyond the account's concurrency (at least this many, at most as many as
#: the limit): jobs started together end together, and while one wave downloads and stores
#: its videos, the next must already be waiting for the slots it frees.
_QUEUE_EXTRA = 2
#: Rows in flight when the account declares no concurrency limit.
_UNLIMITED_WINDOW = 16
#: Longest wait between looks at the account's free slots while rows queue in the batch.
_SLOT_CHECK = 0.25


class _Eta:
    """Seconds a row takes, learned per (provider, tier) from rows that finished.

    Seeded from the job journal's finished generations of the same provider *account*
    (so emulator runs, which are another account, never teach a real batch) and tier;
    then every row that finishes here adds to it. Kept as seconds per output second.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str | None], list[float]] = {}

    def seed(self, journal: Journal, provider: Provider, config: Config) -> None:
        """Learn from the journal's last succeeded entries of this provider's account."""
        from .governor import account_for
        from .pricing import pricing_for, tier_of_usage

        account = account_for(provider).id
        pricing = pricing_for(provider, config)
        for entry in journal.list(states=["succeeded"], limit=_HISTORY):
            if entry.provider != provider.name or entry.account != account:
                continue
            if entry.sent_at is None or entry.finished_at is None:
                continue
            usage = entry.usage or (entry.result.usage if entry.result is not None else {})
            seconds_key = pricing.usage_seconds if pricing is not None else "duration"
            duration = usage.get(seconds_key) or entry.request.get("duration")
            if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration <= 0:
                continue
            tier = tier_of_usage(usage, provider, pricing)
            self.learn(provider.name, tier, float(duration), entry.finished_at - entry.sent_at)

    def learn(self, provider: str, tier: str | None, duration: float, elapsed: float) -> None:
        self._seen.setdefault((provider, tier), []).append(elapsed / max(duration, 1.0))

    def row_seconds(self, provider: str, tier: str | None, duration: float) -> float | None:
        seen = self._seen.get((provider, tier))
        return statistics.median(seen) * max(duration, 1.0) if seen else None


#: Finished journal entries read to seed the ETA.
_HISTORY = 500


def window(provider: Provider, config: Config) -> tuple[int, int | None]:
    """(rows kept in flight, the account's concurrency) from the governor's limits."""
    from .governor import limits_for

    limits = limits_for(provider, config)
    permits, concurrency = limits.permits(), limits.concurrency
    if permits is None or concurrency is None:
        return _UNLIMITED_WINDOW, None
    return permits + max(_QUEUE_EXTRA, concurrency), concurrency


class Runner:
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
        #: Set (and replaced) whenever one of our jobs ends at the provider: its slot is free.
        self._slot_freed = asyncio.Event()
        self._downloading: set[str] = set()
        #: Rows let through for a slot whose create has not answered yet.
        self._unsent: set[str] = set()
        self._provider_of = {planned.row.id: planned.provider for planned in plan.rows}
        #: Account key per provider instance (two accounts of one provider are two instances).
        self._accounts: dict[int, str] = {}
        #: The worst billed/estimated cost ratio seen (1: bills matched the estimates).
        self._price_ratio = 1.0
        self._budget_stopped = False
        #: Per account, rows past `_slot_free` whose job does not exist yet.
        self._admitted: dict[str, int] = {}
        #: Row id -> account key, for rows past `_slot_free` and not yet journaled.
        self._admitting: dict[str, str] = {}
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
        by_account: dict[str, list[float]] = {}
        limits: dict[str, int] = {}
        for planned in self.plan.rows:
            state = self.states[planned.row.id]
            if state in ("succeeded", "failed"):
                continue
            seconds = self.eta.row_seconds(planned.provider.name, planned.tier, planned.row.request.duration)
            if seconds is None:
                return None
            account = self._account(planned.provider)
            by_account.setdefault(account, []).append(seconds)
            limits.setdefault(account, self._window(planned.provider)[1] or _UNLIMITED_WINDOW)
        if not by_account:
            return 0.0
        return max(sum(times) / limits[account] for account, times in by_account.items())

    def _account(self, provider: Provider) -> str:
        """Whose limits `provider`'s rows share (rows of two accounts of one provider run side by side)."""
        from .governor import account_for

        key = self._accounts.get(id(provider))
        if key is None:
            key = self._accounts[id(provider)] = account_for(provider).key
        return key

    def _window(self, provider: Provider) -> tuple[int, int | None]:
        account = self._account(provider)
        if account not in self._windows:
            self._windows[account] = window(provider, self.config)
        return self._windows[account]

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
            elif event.kind == "journaled":
                self._admitted_done(row_id)
            elif event.kind in ("submitted", "attached"):
                self._admitted_done(row_id)
                self._unsent.discard(row_id)
                self.states[row_id] = "queued"
            elif event.kind == "status" and data.get("state") in ("queued", "running"):
                self.states[row_id] = data["state"]
            elif event.kind == "status" and data.get("state") in ("succeeded", "failed", "cancelled"):
                # Ended at the provider: its slot is free; what is left is local (delivery, outcome).
                self.states[row_id] = "delivering"
                self._free_slot()
            elif event.kind == "progress" and data.get("phase") == "downloading":
                if row_id not in self._downloading:
                    # The permit is released before the download starts: look again now.
                    self._downloading.add(row_id)
                    self._free_slot()
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

    def _in_use(self, account: str, governed: int) -> int:
        """Slots taken or about to be, as far as this batch can tell.

        The governor counts every permit (other processes' too, and ours once taken); rows
        let through here take theirs a moment later. So: the governor's count plus ours not
        yet journaled, or, if larger, our rows at the provider plus ours let through and not
        yet created (each of those will hold a permit, whatever the governor shows yet).
        """
        ours = sum(
            1 for row_id, state in self.states.items() if state in ("queued", "running") and self._of(row_id, account)
        )
        unsent = sum(1 for row_id in self._unsent if self._of(row_id, account))
        return max(governed + self._admitted.get(account, 0), ours + unsent)

    def _of(self, row_id: str, account: str) -> bool:
        provider = self._provider_of.get(row_id)
        return provider is not None and self._account(provider) == account

    def _free_slot(self) -> None:
        self._slot_freed.set()
        self._slot_freed = asyncio.Event()

    def _admitted_done(self, row_id: str) -> None:
        """The row is journaled (its permit comes next, and the governor counts it): stop counting it here."""
        name = self._admitting.pop(row_id, None)
        if name is not None:
            self._admitted[name] -= 1

    def _job_created(self, planned: PlannedRow, job_id: str) -> None:
        self._admitted_done(planned.row.id)
        self._unsent.discard(planned.row.id)
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
        from .governor import account_for, get_governor, limits_for

        _, concurrency = self._window(planned.provider)
        if concurrency is None:
            return
        governor = get_governor(self.config)
        account = account_for(planned.provider)
        limits = limits_for(planned.provider, self.config)
        key = account.key
        row_id = planned.row.id
        while not self._stopping:
            # The governor's permits: `concurrency`, plus `queue_ahead` rows created to wait at
            # the provider (until the account refuses one).
            limit = limits.permits(account) or concurrency
            in_use = self._in_use(key, await governor.in_use(account))
            if in_use < limit:
                self._admitted[key] = self._admitted.get(key, 0) + 1
                self._admitting[row_id] = key
                self._unsent.add(row_id)
                return
            if self.states.get(row_id) != "waiting":
                self.states[row_id] = "waiting"
                self.note = f"waiting for a slot: {in_use}/{limit} in use"
                self._update()
            # Woken when one of our jobs ends (its slot comes free); the timeout catches slots
            # freed by other processes sharing the account.
            wake = self._slot_freed
            try:
                await asyncio.wait_for(wake.wait(), timeout=_SLOT_CHECK)
            except asyncio.TimeoutError:
                pass

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
            self._admitted_done(planned.row.id)
            self._unsent.discard(planned.row.id)
            self.in_flight.pop(row_id, None)
        if outcome.tier is None and planned.tier is not None:
            outcome = attrs.evolve(outcome, tier=planned.tier)
        return outcome

    def _finish(self, planned: PlannedRow, outcome: RowOutcome) -> None:
        row_id = planned.row.id
        self._free_slot()
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

    async def _seed_eta(self, providers: list[Provider]) -> None:
        from .journal import get_journal

        def seed() -> None:
            journal = get_journal(self.config)
            if journal is not None:
                for provider in providers:
                    self.eta.seed(journal, provider, self.config)

        try:
            await asyncio.to_thread(seed)
        except Exception:  # an ETA is a nicety: never a reason to stop a batch
            log.warning("could not read the timing history from the job journal", exc_info=True)

    async def run(self) -> None:
        """Run every row to be run; the outcomes queue ends with None whatever happens."""
        from .governor import account_for

        workers: list[asyncio.Future[None]] = []
        try:
            for planned in self.todo:
                account_for(planned.provider)  # a missing or unreadable key stops the batch here, before any row
            groups: dict[str, deque[PlannedRow]] = {}
            providers: dict[str, Provider] = {}
            for planned in self.todo:
                # One window per account: two keys of one provider are two sets of limits.
                groups.setdefault(self._account(planned.provider), deque()).append(planned)
                providers[self._account(planned.provider)] = planned.provider
            await self._seed_eta(list(providers.values()))
            for name, rows in groups.items():
                size, _ = self._window(providers[name])
                workers += [asyncio.ensure_future(self._worker(rows)) for _ in range(min(size, len(rows)))]
            self._update()
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await self.outcomes.put(None)


def check_budget(plan: BatchPlan, max_cost: float | None, spent: float = 0.0) -> None:
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
