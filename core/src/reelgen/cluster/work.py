"""The work of a queued row, in short steps: submit, then check (one poll) until it can be collected.

No step holds a worker for long: `submit_step` creates the job (through the journal, so
a redelivered submit attaches to or adopts the job its first delivery created, and never
pays twice), gives the job back to the fleet (its journal owner is cleared; its governor
permit stays, bound to the job) and asks for a check. `check_step` adopts the job
(compare-and-set in the journal), asks the provider once, and either gives it back with
the next check's delay (renewing the permit's lease) or, once it has ended, collects it
(download, store, cache: seconds) and records the row's outcome line.

Delivery is at least once; billing stays at most once because every step starts from
what the journal and the batch state say: a row with a job is never submitted again; a
check whose number is not the row's live one drops itself (redeliveries do not multiply);
a row's outcome is written once. A worker killed mid-step leaves its message unacked:
the broker hands it to another worker, which picks up from the journal. The one slow
path is a job whose owner died *during* its create (no task id in the journal): its
check runs the pipeline's own recovery (reconciling through the provider's task list)
to the end.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..batches import RowOutcome
    from ..config import Config
    from ..contract import VideoRequest, VideoResult
    from ..events import Event
    from ..journal import JournalEntry
    from ..provider import Provider
    from .batchstate import BatchState

__all__ = ["Check", "Resubmit", "Task", "Wake", "check_step", "overdue_after", "state_of", "submit_step", "task_for"]

log = logging.getLogger("reelgen.worker")

#: Longest a submit step waits for a slot or a submit token before handing the row back to the queue.
SUBMIT_BUDGET = 20.0
#: How soon a parked row (its account was full) comes back on its own, in case nobody wakes it.
_SLOT_RECHECK = 3.0
#: The shortest pause between two checks of one job (seconds).
_MIN_CHECK = 0.25
#: How much longer than a submit step's budget a row's submit claim lives (a dead holder's lapses).
_CLAIM_MARGIN = 20.0
#: How often a row may start over after its job was proved never created (its worker died before the create).
MAX_RESTARTS = 5
#: The least time past due before a follower re-sends a row's step (seconds).
_OVERDUE_FLOOR = 30.0
#: Rows (batch, row) whose check runs in this process now.
_STEPPING: set[tuple[str, str]] = set()
_STEPPING_LOCK = threading.Lock()


@attrs.frozen(kw_only=True)
class Task:
    """One queued row: everything a worker on any machine needs (JSON; no secret, no local path)."""

    batch: str
    row: str
    provider: str
    #: The request as cattrs JSON; a local image travels inline (`{"base64": ...}`).
    request: dict[str, Any]
    #: The row's `[accounts.NAME]`: each worker applies its own configuration's section of
    #: that name (its key file is the worker's), so no credential or local path travels.
    account: str | None = None
    #: Settings over `[providers.NAME]` for this row, after the account's (e.g. another
    #: endpoint's `base_url`): each account has its own limits, so its own governor.
    provider_config: dict[str, Any] = attrs.field(factory=dict)
    use_cache: bool = True
    line: int = 0


@attrs.frozen
class Resubmit:
    """Send the row's submit again in `delay` seconds (no slot free now, or its job never existed)."""

    delay: float


@attrs.frozen
class Wake:
    """Send the submit of `task` (a row that was waiting for the slot just freed) now."""

    task: dict[str, Any]


@attrs.frozen
class Check:
    """Check `ref` again in `delay` seconds, as the row's check number `seq`."""

    ref: str
    seq: int
    attempt: int
    delay: float


def task_for(
    batch: str,
    row: str,
    request: VideoRequest,
    provider: str,
    *,
    provider_config: dict[str, Any] | None = None,
    account: str | None = None,
    use_cache: bool = True,
    line: int = 0,
) -> Task:
    """A `Task` for `request`, with a local reference image read into the message."""
    from ..serialization import unstructure

    image = request.reference_image
    if isinstance(image, (str, Path)) and not _is_remote(str(image)):
        path = Path(str(image)[len("file://") :] if str(image).startswith("file://") else str(image)).expanduser()
        request = attrs.evolve(request, reference_image=path.read_bytes())
    data: dict[str, Any] = unstructure(request)
    return Task(
        batch=batch,
        row=row,
        provider=provider,
        request=data,
        account=account,
        provider_config=dict(provider_config or {}),
        use_cache=use_cache,
        line=line,
    )


def _is_remote(reference: str) -> bool:
    return "://" in reference and not reference.startswith("file://")


def _config(task: Task, config: Config) -> Config:
    if task.account is not None:
        # Unknown to this worker, or another provider's: a ConfigError naming the fix.
        _, config = config.for_account(task.account, provider=task.provider)
    if not task.provider_config:
        return config
    providers = dict(config.providers)
    providers[task.provider] = {**providers.get(task.provider, {}), **task.provider_config}
    return config.evolve(providers=providers)


def _request(task: Task) -> VideoRequest:
    from ..contract import VideoRequest
    from ..serialization import structure

    return structure(dict(task.request), VideoRequest)


def _state(task: Task, config: Config) -> BatchState:
    return state_of(config, task.batch)


def state_of(config: Config, batch: str) -> BatchState:
    """The Redis state of queued batch `batch`."""
    from ._redis import redis_settings
    from .batchstate import BatchState

    settings = redis_settings(config)
    if settings is None:
        from ._redis import RedisUnavailable

        raise RedisUnavailable(
            "queued batches (--queue) need a Redis: set REELGEN_REDIS_URL or [cluster] redis = 'redis://...'"
        )
    return BatchState(settings[0], settings[1], batch)


def overdue_after(config: Config) -> float:
    """How long past its scheduled time a row's next step may not have started before the
    follower sends it again: well beyond Dramatiq's own redelivery of a dead worker's messages
    (`requeue_after`), and beyond a slow step (a download, a reconciliation)."""
    return max(_OVERDUE_FLOOR, 3 * config.cluster.requeue_after)


def _outcome(task: Task, provider: Provider, config: Config, result: VideoResult, started: float) -> RowOutcome:
    from ..batches import RowOutcome
    from ..pricing import billed_cost

    cost = billed_cost(result, provider, config, _request(task))
    job_id = f"{result.provider}:{result.task_id}" if result.task_id else None
    elapsed = None if result.cached else max(0.0, time.time() - started)
    return RowOutcome(
        id=task.row, result=result, job_id=job_id, cost=cost, elapsed=elapsed, tier=cost.tier if cost else None
    )


def _failed(task: Task, error: Any, job_id: str | None) -> RowOutcome:
    from ..batches import RowOutcome

    return RowOutcome(id=task.row, error=error, job_id=job_id or getattr(error, "job_id", None))


async def submit_step(task: Task, config: Config) -> Check | Resubmit | None:
    """Create the row's job (once), hand it to the fleet, and say when to check it.

    A full account is not waited for here: the row goes back to the queue (`Resubmit`),
    so no worker sits on a slot wait for minutes. Copies of a row's submit message (a
    redelivery, a woken parked row) never run at once: one claims the row, the others
    come back later and find its job.
    """
    from ..errors import ReelgenError

    state = _state(task, config)
    if state.is_done(task.row):
        return None
    try:
        config = _config(task, config)
    except ReelgenError as exc:  # e.g. this worker has no such account: the row fails, saying why
        state.finish(task.row, _failed(task, exc, None).to_line())
        return None
    ref = state.job(task.row)
    if ref is None:
        claim = state.claim_submit(task.row, ttl=SUBMIT_BUDGET + _CLAIM_MARGIN)
        if claim is None:
            return Resubmit(delay=_SLOT_RECHECK)  # another copy of this submit is running
        try:
            return await _submit_claimed(task, config, state)
        finally:
            state.release_submit(task.row, claim)
    if not state.advance(task.row, 0):
        return None  # a check chain for this row exists already (this is a redelivery)
    return Check(ref=ref, seq=1, attempt=0, delay=_first_delay(task, config, ref))


async def _submit_claimed(task: Task, config: Config, state: BatchState) -> Check | Resubmit | None:
    """`submit_step` while this worker alone may submit the row."""
    from .._pipeline import submit
    from .._registry import get_provider
    from ..errors import GenerationTimeout, ReelgenError
    from ..journal import Owner, get_journal

    # Looked at again under the claim: the copy that held it before may have finished.
    if state.is_done(task.row):
        return None
    ref = state.job(task.row)
    if ref is None:
        provider = get_provider(task.provider, config=config)
        wait = await _slot_wait(provider, config)
        if wait is not None:
            _room(provider, config).park(attrs.asdict(task), at=time.time())
            return Resubmit(delay=wait)
        started = time.time()
        try:
            job = await submit(
                _request(task), provider, config=config, use_cache=task.use_cache, deadline=SUBMIT_BUDGET
            )
            if job.done:  # a cache hit: nothing to pay, nothing to wait for
                state.finish(task.row, _outcome(task, provider, config, await job.wait(), started).to_line())
                return None
        except GenerationTimeout as exc:
            if exc.job_id is None:  # no slot or token in time: nothing was created
                _room(provider, config).park(attrs.asdict(task), at=time.time())
                return Resubmit(delay=_SLOT_RECHECK)
            state.finish(task.row, _failed(task, exc, None).to_line())
            return None
        except ReelgenError as exc:
            state.finish(task.row, _failed(task, exc, None).to_line())
            return None
        ref = job.entry_id or job.id
        assert ref is not None
        state.set_job(task.row, ref)
        journal = get_journal(config)
        if journal is not None and job.entry_id is not None:
            # Give the job to the fleet: whichever worker takes the next check adopts it.
            journal.update(job.entry_id, expect_owner=Owner.current(), owner=None, heartbeat=time.time())
    if not state.advance(task.row, 0):
        return None  # a check chain for this row exists already (this is a redelivery)
    return Check(ref=ref, seq=1, attempt=0, delay=_first_delay(task, config, ref))


def _room(provider: Provider, config: Config) -> Any:
    from ..governor import account_for
    from ._redis import redis_settings
    from .batchstate import WaitingRoom

    settings = redis_settings(config)
    assert settings is not None
    return WaitingRoom(settings[0], settings[1], account_for(provider).key)


def _wake(provider: Provider, config: Config) -> Wake | None:
    """One of the account's jobs ended (its slot is free): the oldest parked row goes next."""
    task = _room(provider, config).take()
    return Wake(task) if task is not None else None


async def _slot_wait(provider: Provider, config: Config) -> float | None:
    """None when the account has a free slot; else how long to wait before trying again."""
    from ..governor import account_for, get_governor, limits_for

    account = account_for(provider)
    permits = limits_for(provider, config).permits(account)
    if permits is None:
        return None
    in_use = await get_governor(config).in_use(account)
    return None if in_use < permits else _SLOT_RECHECK


def _first_delay(task: Task, config: Config, ref: str) -> float:
    from .._registry import get_provider

    return _next_delay(get_provider(task.provider, config=config), config, ref, 0)


def _next_delay(provider: Provider, config: Config, ref: str, attempt: int) -> float:
    from ..jobs import job_from_record
    from ..journal import get_journal

    journal = get_journal(config)
    entry = journal.get(ref) if journal is not None else None
    if entry is None or entry.job is None:
        return 1.0
    job = job_from_record(entry.job)
    # Never 0: this step has just looked ("look now" is what a provider says of a job it never saw).
    return max(_MIN_CHECK, float(provider.poll_delay(job, attempt, time.time() - job.submitted_at)))


async def check_step(
    task: Task, check: Check, config: Config, *, wake: Callable[[dict[str, Any]], None] | None = None
) -> Check | Resubmit | Wake | None:
    """Look at the row's job once; collect it when it has ended, else say when to look again.

    `wake(task)` sends a parked row's submit as soon as this job's slot is free: the pipeline
    frees it when it sees the task end, before the download, so the next row starts while
    this one's video is downloaded and stored.
    """
    from ..errors import ReelgenError

    state = _state(task, config)
    if state.seq(task.row) != check.seq or state.is_done(task.row):
        return None  # a stale duplicate, or the row is finished
    try:
        config = _config(task, config)
    except ReelgenError as exc:
        state.finish(task.row, _failed(task, exc, check.ref).to_line())
        return None
    # A copy of this check (a redelivery, or one the follower sent again) already running in
    # this process shares its journal owner, so the journal cannot tell them apart: this one
    # waits its turn. The copies keep the check number: only the step that drives the job
    # moves it on (or starts the row over), so a copy never makes the driver's step stale.
    key = (task.batch, task.row)
    with _STEPPING_LOCK:
        driving = key not in _STEPPING
        _STEPPING.add(key)
    if not driving:
        return _later(check, delay=max(1.0, check.delay))
    try:
        return await _check_driving(task, check, config, state, wake)
    finally:
        with _STEPPING_LOCK:
            _STEPPING.discard(key)


async def _check_driving(
    task: Task,
    check: Check,
    config: Config,
    state: BatchState,
    wake: Callable[[dict[str, Any]], None] | None,
) -> Check | Resubmit | Wake | None:
    """`check_step` once no other step of the row runs in this process."""
    from .._pipeline import resume
    from .._registry import get_provider
    from ..errors import ProviderFailed, ReelgenError, TransientError
    from ..journal import JournalError, Owner, get_journal

    journal = get_journal(config)
    if journal is None:
        raise JournalError("queued batches need the job journal: jobs.url must not be off")
    provider = get_provider(task.provider, config=config)
    entry = journal.get(check.ref)
    if entry is None:
        error = JournalError(f"job {check.ref} of row {task.row} is not in the journal {journal.location}")
        state.finish(task.row, _failed(task, error, check.ref).to_line())
        return None
    me = Owner.current()
    if entry.state == "succeeded" and entry.result is not None:
        state.finish(task.row, _outcome(task, provider, config, entry.result, entry.submitted_at).to_line())
        return None
    busy = entry.owner is not None and entry.owner != me and not entry.orphaned()
    if busy or journal.adopt(entry.id, entry.owner, me) is None:
        # Someone alive drives it (a `jobs resume`, or a copy of this check won the adoption):
        # look later, keeping the check number (the driver's step moves it on).
        return _later(check, delay=max(1.0, check.delay))
    woke = False

    def observe(event: Event) -> None:
        nonlocal woke
        delivering = event.kind == "downloaded" or event.data.get("phase") == "downloading"
        if delivering and not woke and wake is not None:
            woke = True
            early = _wake(provider, config)
            if early is not None:
                wake(early.task)

    try:
        job = resume(entry.id, config=config, provider=provider, on_event=observe)
        if entry.task_id is not None and not entry.terminal:
            try:
                status = await job.status()
            except TransientError as exc:  # one failed look never fails a running job
                log.info("check of %s failed transiently (%s); looking again later", entry.ref, exc)
                await _hand_back(entry, entry.state, provider, config)
                return _again(state, task, check, delay=max(2.0, getattr(exc, "retry_after", None) or 0.0))
            if status.state in ("queued", "running"):
                await _hand_back(entry, status.state, provider, config)
                return _again(state, task, check, delay=_next_delay(provider, config, entry.id, check.attempt + 1))
        result = await job.wait()  # ended (or never named: the pipeline's own recovery)
    except ProviderFailed as exc:
        # Its worker died before the create went out, and the provider's task list shows no
        # task: nothing was created or billed, so the row starts over.
        after = journal.get(entry.id)
        never_created = entry.task_id is None and after is not None and after.state == "failed" and not after.task_id
        if never_created and state.restart(task.row, check.seq, limit=MAX_RESTARTS):
            return Resubmit(delay=0.0)
        state.finish(task.row, _failed(task, exc, entry.ref).to_line())
        return None if woke else _wake(provider, config)
    except ReelgenError as exc:
        state.finish(task.row, _failed(task, exc, entry.ref).to_line())
        return None if woke else _wake(provider, config)
    state.finish(task.row, _outcome(task, provider, config, result, entry.submitted_at).to_line())
    return None if woke else _wake(provider, config)


async def _hand_back(entry: JournalEntry, seen: str, provider: Provider, config: Config) -> None:
    """Between checks the job belongs to the fleet; its permit's lease is renewed meanwhile."""
    from ..governor import account_for, get_governor
    from ..journal import Owner, get_journal

    journal = get_journal(config)
    assert journal is not None
    changes: dict[str, Any] = {"owner": None, "heartbeat": time.time()}
    if entry.state in ("queued", "running") and entry.state != seen:
        changes["state"] = seen
    journal.update(entry.id, expect_owner=Owner.current(), **changes)
    if entry.job_id is not None:
        await get_governor(config).renew_job(account_for(provider), entry.job_id, entry=entry.id)


def _later(check: Check, *, delay: float) -> Check:
    """The same check again in `delay` seconds (another step drives the job meanwhile)."""
    return Check(ref=check.ref, seq=check.seq, attempt=check.attempt, delay=delay)


def _again(state: BatchState, task: Task, check: Check, *, delay: float) -> Check | None:
    if not state.advance(task.row, check.seq):
        return None
    return Check(ref=check.ref, seq=check.seq + 1, attempt=check.attempt + 1, delay=delay)
