"""A generation being waited on: create (journaled), poll, cancel, follow or adopt, then deliver.

`Job.wait()` drives the job to a stored result within the deadline: the create (for a
new job, retried only where the provider proves no task was created; an ambiguous
create is reconciled through the provider's task list), polls on the provider's
schedule through the account governor, then hands the finished video to
`reelgen._delivery`. Every step is written to the job journal, so another process can
follow it, adopt it when this one dies, or resume it.

A job this process does not drive is *followed* through the journal (another live
process owns it) or *adopted* (its owner is gone: compare-and-set the owner, then poll;
never re-submit). Several callers in one event loop share one driver (single-flight).
Cancelling the waiting task (Ctrl-C) or calling `Job.cancel()` cancels the remote job
where the provider can.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from . import _hooks
from ._delivery import Delivery, deliver, resume_hint
from .config import Config
from .contract import VideoRequest, VideoResult, parse_size
from .errors import (
    Cancelled,
    DeliveryFailed,
    GenerationTimeout,
    PluginError,
    ProviderError,
    ProviderFailed,
    RateLimited,
    ReelgenError,
    SubmissionUnknown,
    TransientError,
)
from .events import Event, EventKind
from .journal import HEARTBEAT_EVERY, Journal, JournalEntry, JournalError, Owner
from .provider import JobStatus, Provider, ProviderJob, ProviderOutput
from .retry import backoff_delay

__all__ = ["EventCallback", "Job", "job_from_record", "job_record"]

log = logging.getLogger("reelgen.jobs")

_T = TypeVar("_T")


async def _counted(token: Any, call: Awaitable[_T]) -> _T:
    """Await a provider call, then tell the governor it ended: a rate window counts a call
    from its end, since the service counts it on arrival (`reelgen.governor.Token`)."""
    try:
        return await call
    finally:
        await token.done()


EventCallback = Callable[[Event], Any]
Mode = Literal["drive", "follow", "recover"]

_SUBMIT_ATTEMPTS = 8
#: How far beyond the create's own time span the provider's task list is searched (clock skew).
_RECONCILE_SKEW = 5.0
#: Looks at the task list while other creates of the account may still name their tasks.
_RECONCILE_LOOKS = 4
#: How often a follower looks at the journal.
_FOLLOW_EVERY = 0.5

#: (id(loop), cache key) -> the job driving that key in that loop (in-process single-flight).
_flights: dict[tuple[int, str], Job] = {}
#: The loop each job registered in (ids of finished loops are reused by new ones).
_flight_loops: weakref.WeakKeyDictionary[Job, asyncio.AbstractEventLoop] = weakref.WeakKeyDictionary()


def job_record(job: ProviderJob) -> dict[str, Any]:
    """What the journal keeps of a provider job (JSON-safe, secret-free); `job_from_record` reads it."""
    return {
        "provider": job.provider,
        "model": job.model,
        "task_id": job.task_id,
        "submitted_at": job.submitted_at,
        "seed": job.seed,
        "warnings": list(job.warnings),
        "data": dict(job.data),
    }


def job_from_record(record: dict[str, Any]) -> ProviderJob:
    return ProviderJob(
        provider=record["provider"],
        model=record["model"],
        task_id=record["task_id"],
        submitted_at=record["submitted_at"],
        seed=record.get("seed"),
        warnings=tuple(record.get("warnings", ())),
        data=record.get("data", {}),
    )


def in_flight(key: str) -> Job | None:
    """The job this event loop is driving for `key`, if any."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    job = _flights.get((id(loop), key))
    if job is None or job.finished or _flight_loops.get(job) is not loop:
        return None
    return job


class Job:
    """A durable handle on one generation. `id` is `provider:task_id` (or the journal entry's
    `j-...` id while the provider has not named the task); see `reelgen.resume`."""

    def __init__(
        self,
        *,
        provider: Provider,
        config: Config,
        request: VideoRequest | None,
        key: str | None,
        warnings: list[str],
        job: ProviderJob | None = None,
        result: VideoResult | None = None,
        deadline_at: float,
        on_event: EventCallback | None = None,
        journal: Journal | None = None,
        entry: JournalEntry | None = None,
        use_cache: bool = True,
        queue_timeout: float | None = None,
        mode: Mode = "drive",
        leader: Job | None = None,
    ) -> None:
        self.provider = provider
        self.config = config
        self.request = request
        self.key = key
        self.provider_job = job
        self.use_cache = use_cache
        self._warnings = list(warnings)
        self._result = result
        #: Absolute deadline on the `time.monotonic()` clock.
        self._deadline_at = deadline_at
        self._queue_timeout = queue_timeout
        self._listeners: list[EventCallback] = [on_event] if on_event is not None else []
        self._journal = journal
        self._entry = entry
        self._mode: Mode = mode
        self._leader = leader
        self._owner = Owner.current()
        self._cancel_requested = asyncio.Event()
        self._remote_cancelled = False
        self._last_status: JobStatus | None = None
        self._driver: asyncio.Future[VideoResult] | None = None
        self._waiters = 0
        self._permit: Any = None
        self._last_heartbeat = 0.0
        self._journaled_state: str | None = entry.state if entry is not None else None
        self._error: BaseException | None = None
        #: When the last create was sent (Unix time), to search the provider's task list around it.
        self._sent_at: float | None = None
        #: The create in flight (`begin`): callers that attach meanwhile wait for it.
        self._starting: asyncio.Future[None] | None = None

    # -- public face -----------------------------------------------------------------

    @property
    def _lead(self) -> Job:
        return self._leader or self

    @property
    def id(self) -> str | None:
        """`provider:task_id`, the entry id (`j-...`) before the task is named, or None for a cache hit."""
        lead = self._lead
        if lead.provider_job is not None:
            return lead.provider_job.id
        if lead._entry is not None:
            return lead._entry.ref
        return None

    @property
    def entry_id(self) -> str | None:
        """The journal entry's permanent id (`j-...`), if the job is journaled."""
        return self._lead._entry.id if self._lead._entry is not None else None

    @property
    def task_id(self) -> str | None:
        lead = self._lead
        if lead.provider_job is not None:
            return lead.provider_job.task_id
        return lead._entry.task_id if lead._entry is not None else None

    @property
    def done(self) -> bool:
        return self._lead._result is not None

    @property
    def finished(self) -> bool:
        """Done, failed or given up: nothing more will happen through this handle."""
        lead = self._lead
        return lead._result is not None or (lead._driver is not None and lead._driver.done())

    async def status(self) -> JobStatus:
        """Ask the provider once for the job's state (no waiting, no download)."""
        lead = self._lead
        if lead._result is not None:
            raw = "CACHED" if lead._result.cached else "SUCCEEDED"
            return JobStatus(state="succeeded", raw_status=raw)
        if lead.provider_job is None and lead._entry is not None and lead._entry.job is not None:
            lead.provider_job = job_from_record(lead._entry.job)
        if lead.provider_job is None:
            return JobStatus(state="queued", raw_status=(lead._entry.state if lead._entry else "SUBMITTING").upper())
        token = await lead._throttle_query()
        return await _counted(token, lead.provider.poll(lead.provider_job))

    async def cancel(self) -> bool:
        """Cancel the remote job. Returns whether the provider stopped it (and won't bill it).

        A provider that cannot cancel a running job returns False: the job runs on and is
        billed; `wait()` then raises `Cancelled` without waiting for it.
        """
        lead = self._lead
        if lead._result is not None:
            return False
        if lead.provider_job is None and lead._entry is not None and lead._entry.job is not None:
            lead.provider_job = job_from_record(lead._entry.job)
        # Ask the provider first, so the woken waiter reports the real outcome.
        stopped = await lead._cancel_remote("cancel() called") if lead.provider_job is not None else False
        lead._cancel_requested.set()
        return stopped

    async def wait(self) -> VideoResult:
        """Wait for the video, store and measure it, and return the result."""
        lead = self._lead
        if lead._result is not None:
            return lead._result
        if lead._driver is None:
            lead._driver = asyncio.ensure_future(lead._drive())
        lead._waiters += 1
        try:
            return await asyncio.shield(lead._driver)
        except asyncio.CancelledError:
            if not lead._driver.done() and lead._waiters == 1:
                # The last caller waiting gave up (Ctrl-C): stop the job, as before single-flight.
                lead._driver.cancel()
                try:
                    await lead._driver
                except BaseException:  # noqa: BLE001 - the driver reports its own outcome
                    pass
            raise
        finally:
            lead._waiters -= 1

    def attach(self, on_event: EventCallback | None, *, why: str) -> Job:
        """Another caller joins this job: it shares the result and gets the events from now on."""
        view = Job(
            provider=self.provider,
            config=self.config,
            request=self.request,
            key=self.key,
            warnings=self._warnings,
            deadline_at=self._deadline_at,
            use_cache=self.use_cache,
            leader=self,
        )
        if on_event is not None:
            self._listeners.append(on_event)
        self.emit("attached", job_id=self.id, why=why)
        return view

    # -- events ----------------------------------------------------------------------

    def emit(self, kind: EventKind, **data: Any) -> None:
        lead = self._lead
        event = Event(kind=kind, provider=lead.provider.name, job_id=lead.id, data=data)
        _hooks.emit_event(event)
        for listener in list(lead._listeners):
            try:
                _hooks.schedule(listener(event))
            except Exception:
                log.exception("reelgen event observer %r raised", listener)

    def _on_wait(self, wait: Any) -> None:
        self.emit("waiting", reason=wait.reason, in_use=wait.in_use, limit=wait.limit, message=wait.describe())

    # -- the journal -------------------------------------------------------------------

    async def _journal_update(self, *, loud: bool = False, **changes: Any) -> None:
        """Write `changes` to this job's entry, as its owner. `loud`: a failure raises."""
        if self._journal is None or self._entry is None:
            return
        try:
            updated = await asyncio.to_thread(
                self._journal.update, self._entry.id, expect_owner=self._entry.owner, **changes
            )
        except Exception as exc:
            if loud:
                raise
            log.error("could not update job %s in the journal %s: %s", self.id, self._journal.location, exc)
            return
        if updated is None:
            if loud:
                raise JournalError(
                    f"job {self.id} was taken over by another process in the journal {self._journal.location}; "
                    "nothing more is sent from here"
                )
            log.warning("job %s was taken over by another process; leaving it to that one", self.id)
            return
        self._entry = updated
        self._journaled_state = updated.state

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_EVERY)
            await self._journal_update(heartbeat=time.time())

    async def _heartbeat(self) -> None:
        now = time.time()
        if now - self._last_heartbeat >= HEARTBEAT_EVERY:
            self._last_heartbeat = now
            await self._journal_update(heartbeat=now)

    # -- the governor ------------------------------------------------------------------

    def _governor(self) -> tuple[Any, Any, Any]:
        from .governor import account_for, get_governor, limits_for

        return get_governor(self.config), account_for(self.provider), limits_for(self.provider, self.config)

    async def _throttle_query(self) -> Any:
        governor, account, limits = self._governor()
        return await governor.throttle(
            account, limits, "query", deadline_at=max(self._deadline_at, time.monotonic()), on_wait=self._on_wait
        )

    async def _renew(self) -> None:
        try:
            if self._permit is not None:
                await self._permit.renew()
            elif self.provider_job is not None:
                governor, account, _ = self._governor()
                await governor.renew_job(account, self.provider_job.id)
        except Exception:
            log.warning("could not renew the governor permit of %s", self.id, exc_info=True)

    async def _release(self, *, terminal: bool) -> None:
        try:
            if self._permit is not None:
                await self._permit.release()
                self._permit = None
            if terminal and self.provider_job is not None:
                governor, account, _ = self._governor()
                await governor.release_job(account, self.provider_job.id)
        except Exception:
            log.warning("could not release the governor permit of %s", self.id, exc_info=True)

    # -- driving ---------------------------------------------------------------------

    async def _drive(self) -> VideoResult:
        terminal = False
        try:
            result = await self._run()
            terminal = True
        except asyncio.CancelledError:
            await asyncio.shield(self._interrupted())
            raise
        except ReelgenError as exc:
            self._error = exc
            terminal = await self._record_failure(exc)
            raise
        finally:
            self._unregister()
            await asyncio.shield(self._release(terminal=terminal or self._remote_cancelled))
        self._result = result
        return result

    def _unregister(self) -> None:
        for flight, job in list(_flights.items()):
            if job is self:
                del _flights[flight]

    def register(self) -> None:
        """Make this job the one identical requests in this event loop attach to."""
        if self.key is not None and self.use_cache:
            loop = asyncio.get_running_loop()
            _flights[(id(loop), self.key)] = self
            _flight_loops[self] = loop

    async def _run(self) -> VideoResult:
        if self._starting is not None and not self._starting.done():
            await asyncio.shield(self._starting)  # attached while the create was in flight
        if self._mode == "follow":
            followed = await self._follow()
            if followed is not None:
                return followed
        if self._mode == "recover":
            await self._recover()
            if self._result is not None:
                return self._result
        output = await self._poll_until_done()
        # The task has ended at the provider: its account slot is free now, not after delivery.
        await asyncio.shield(self._release(terminal=True))
        return await self._deliver(output)

    # -- creating ----------------------------------------------------------------------

    def _remaining(self) -> float:
        return self._deadline_at - time.monotonic()

    def _too_late(self, what: str) -> GenerationTimeout:
        return GenerationTimeout(
            f"the deadline passed {what}; nothing was submitted to {self.provider.name} (no task was created)",
            job_id=None,
        )

    async def begin(self) -> None:
        """Send the create, so that callers attaching meanwhile wait for it. Called by `submit`."""
        self._starting = asyncio.ensure_future(self.start())
        await self._starting

    async def start(self) -> None:
        """Send the create (the entry is already journaled as `submitting`)."""
        assert self.request is not None
        # Waiting for a slot or a token can take minutes: keep the entry's heartbeat fresh
        # meanwhile, so no other host takes this live job for an orphan.
        beating = asyncio.ensure_future(self._beat())
        try:
            governor, account, limits = self._governor()
            self._permit = await governor.acquire(account, limits, deadline_at=self._deadline_at, on_wait=self._on_wait)
            await self._create(governor, account, limits)
        except BaseException as exc:
            beating.cancel()
            self._unregister()
            if isinstance(exc, asyncio.CancelledError) and self.provider_job is not None:
                await asyncio.shield(self._interrupted())  # interrupted right after the create
            await asyncio.shield(self._release(terminal=False))
            if isinstance(exc, GenerationTimeout) and self.provider_job is None:
                await self._journal_update(state="failed", error=str(exc), finished_at=time.time())
            raise
        beating.cancel()
        assert self.provider_job is not None
        if self._permit is not None:
            await self._permit.bind(self.provider_job.id)
        self.emit("submitted", task_id=self.provider_job.task_id, seed=self.provider_job.seed)

    async def _create(self, governor: Any, account: Any, limits: Any) -> None:
        assert self.request is not None
        for attempt in range(1, _SUBMIT_ATTEMPTS + 1):
            if self._remaining() <= 0:
                raise self._too_late("while waiting to submit")
            token = await governor.throttle(
                account, limits, "submit", deadline_at=self._deadline_at, on_wait=self._on_wait
            )
            if self._remaining() <= 0:
                raise self._too_late("while waiting to submit")
            try:
                self._sent_at = time.time()
                await self._journal_update(loud=True, sent_at=self._sent_at, heartbeat=self._sent_at)
                created = await _counted(token, self.provider.submit(self.request))
            except asyncio.CancelledError:
                # Interrupted mid-create: a task may exist (the provider cancels such orphans
                # where it can); reconcile before anyone pays for this request again.
                await asyncio.shield(
                    self._journal_update(state="unknown", error="interrupted while the create was in flight")
                )
                raise
            except (SubmissionUnknown, TransientError) as exc:
                if _proved_not_created(exc):
                    delay = backoff_delay(attempt, base=1.0, cap=30.0, hint=getattr(exc, "retry_after", None))
                elif await self._reconcile(ambiguous=exc) == "adopted":
                    return
                else:  # the provider's task list proves that no task was created
                    delay = backoff_delay(attempt, base=1.0, cap=30.0)
                if attempt == _SUBMIT_ATTEMPTS or delay >= self._remaining():
                    await self._journal_update(
                        state="failed", error=f"{exc} (no task was created)", finished_at=time.time()
                    )
                    if self._remaining() <= delay:
                        raise GenerationTimeout(
                            f"could not submit to {self.provider.name} before the deadline: {exc}; no task was created",
                            job_id=None,
                        ) from exc
                    raise
                kind = "throttled" if isinstance(exc, RateLimited) else "failed without creating a task"
                log.info("submit to %s %s (%s); retrying in %.1fs", self.provider.name, kind, exc, delay)
                self.emit("retrying", step="submit", attempt=attempt, delay=delay, reason=str(exc))
                await self._sleep(delay)
                continue
            except ReelgenError as exc:
                await self._journal_update(state="failed", error=str(exc), finished_at=time.time())
                raise
            await self._created(created)
            return

    async def _created(self, created: ProviderJob) -> None:
        """The provider named the task: journal it (loudly: a paid job must be findable)."""
        self.provider_job = created
        record = job_record(created)
        problem = None
        try:
            json.dumps(record, allow_nan=False)
        except (TypeError, ValueError) as exc:
            problem = exc
            record = {**record, "data": {}}
        try:
            await self._journal_update(
                loud=True, state="queued", task_id=created.task_id, job=record, heartbeat=time.time()
            )
        except Exception as exc:  # noqa: BLE001 - the job is paid: go on, the entry is reconciled later
            log.error("task %s was created but could not be journaled: %s", created.id, exc)
        if problem is not None:
            await self._let_go(f"the provider's job data is not JSON ({problem})")
            raise PluginError(
                f"provider {self.provider.name} returned job data that is not JSON ({problem}); task {created.id} "
                f"was created and is journaled without it, so it may not be resumable: fix the provider"
            )

    # -- reconciling an ambiguous create ---------------------------------------------

    def _matching_request(self) -> VideoRequest | None:
        if self.request is not None:
            return self.request
        if self._entry is None:
            return None
        from .serialization import structure

        data = {k: v for k, v in self._entry.request.items() if k != "reference_image"}
        try:
            return structure(data, VideoRequest)
        except ReelgenError:
            return None

    async def _reconcile(self, *, ambiguous: BaseException | None = None) -> Literal["adopted", "absent"]:
        """Look for the task an ambiguous create may have made. Adopt exactly one unclaimed
        match; `absent` when the task list proves there is none; else the entry stays
        `unknown` and `SubmissionUnknown` names it and the candidates.

        The list shows no prompt, so a task another generation of this account created in
        the same window, and has not journaled yet, would look like ours: while other
        creates of the account are in flight, the lone candidate is not adopted until they
        have named their tasks (a few looks, a second apart), else the entry stays unknown."""
        entry = self._entry
        finder = getattr(self.provider, "find_jobs", None)
        request = self._matching_request()
        found: list[ProviderJob] | None = None
        free: list[ProviderJob] = []
        for look in range(1, _RECONCILE_LOOKS + 1):
            found = await self._list_candidates(finder, request)
            if found is None:
                break
            claimed: set[str] = set()
            if self._journal is not None:
                claimed = await asyncio.to_thread(
                    self._journal.claimed, self.provider.name, [job.task_id for job in found]
                )
            free = [job for job in found if job.task_id not in claimed]
            if not free:
                return "absent"
            if len(free) == 1 and not await self._others_creating():
                await self._created(free[0])
                self.emit("attached", job_id=free[0].id, why="adopted")
                return "adopted"
            if len(free) > 1 or look == _RECONCILE_LOOKS:
                break
            await self._sleep(min(1.0, max(0.0, self._remaining())))
        candidates = [job.task_id for job in free]
        why = str(ambiguous) if ambiguous is not None else (entry.error if entry is not None else None)
        await self._journal_update(state="unknown", error=why, candidates=candidates)
        raise self._unknown_error(candidates, listed=found is not None, why=why)

    async def _list_candidates(self, finder: Any, request: VideoRequest | None) -> list[ProviderJob] | None:
        entry = self._entry
        if finder is None or request is None or entry is None:
            return None
        try:
            since = self._sent_at or entry.sent_at or entry.submitted_at
            token = await self._throttle_query()
            found: list[ProviderJob] | None = await _counted(
                token, finder(request, since=since - _RECONCILE_SKEW, until=time.time() + _RECONCILE_SKEW)
            )
        except (ProviderError, GenerationTimeout) as exc:
            log.warning("could not list %s's tasks to reconcile %s: %s", self.provider.name, self.id, exc)
            return None
        return found

    async def _others_creating(self) -> bool:
        """Are other generations of this account between sending their create and its answer?"""
        if self._journal is None or self._entry is None:
            return False
        mine = self._entry
        entries = await asyncio.to_thread(self._journal.list, states=["submitting"], limit=1000)
        return any(
            other.id != mine.id
            and other.sent_at is not None
            and other.provider == mine.provider
            and other.account == mine.account
            and not other.orphaned()
            for other in entries
        )

    def _unknown_error(self, candidates: list[str], *, listed: bool, why: str | None) -> SubmissionUnknown:
        ref = self._entry.ref if self._entry is not None else None
        if not listed:
            found = f"{self.provider.name} cannot list its tasks here, so it cannot be checked"
        elif candidates:
            found = f"{len(candidates)} of {self.provider.name}'s tasks could be it: {', '.join(candidates)}"
        else:
            found = "no matching task was found"
        error = SubmissionUnknown(
            f"the create call for job {ref} ended ambiguously ({why}); a billed task may exist and {found}. "
            f"It is journaled as `unknown`: run `{resume_hint(ref)}` to reconcile it, or submit again with "
            "--force (force=True) to pay for a new task",
            provider=self.provider.name,
        )
        error.job_id = ref
        error.candidates = tuple(candidates)
        return error

    # -- following and adopting ----------------------------------------------------------

    async def _follow(self) -> VideoResult | None:
        """Wait on a job another live process drives; adopt it if that process goes."""
        assert self._journal is not None and self._entry is not None
        seen = self._entry.state
        while True:
            entry = await asyncio.to_thread(self._journal.get, self._entry.id)
            if entry is None:
                raise JournalError(f"job {self.id} vanished from the journal {self._journal.location}")
            self._entry = entry
            if entry.state != seen:
                seen = entry.state
                self.emit("status", state=entry.state, raw_status=entry.state.upper(), message=None)
            if entry.state == "succeeded" and entry.result is not None:
                return entry.result
            if not entry.active:
                raise _entry_error(entry, self.provider.name)
            if entry.orphaned():
                adopted = await asyncio.to_thread(self._journal.adopt, entry.id, entry.owner, self._owner)
                if adopted is not None:
                    self._entry = adopted
                    self._mode = "recover"
                    self.emit("attached", job_id=adopted.ref, why="adopted")
                    return None
                continue
            remaining = self._remaining()
            if remaining <= 0:
                raise GenerationTimeout(
                    f"job {entry.ref} (driven by another process) did not finish before the deadline; it goes on: "
                    f"`{resume_hint(entry.ref)}` picks it up",
                    job_id=entry.ref,
                )
            await self._sleep(min(_FOLLOW_EVERY, remaining))

    async def _recover(self) -> None:
        """Pick up an adopted or resumed entry where its journal says it is."""
        entry = self._entry
        assert entry is not None
        if entry.state == "succeeded" and entry.result is not None:
            self._result = entry.result
            return
        if entry.terminal:
            raise _entry_error(entry, self.provider.name)
        if entry.job is not None:
            self.provider_job = job_from_record(entry.job)
            await self._journal_update(owner=self._owner, heartbeat=time.time(), error=None)
            if entry.state in ("delivering", "delivery_failed"):
                self.emit("attached", job_id=entry.ref, why="delivery")
            return
        # No task id: the owner died during the create, or the reply was lost.
        if await self._reconcile() == "absent":
            error = (
                f"job {entry.ref}: {self.provider.name}'s task list shows no task for it, so nothing was created "
                "or billed; generate again"
            )
            await self._journal_update(state="failed", error=error, finished_at=time.time())
            raise ProviderFailed(error, provider=self.provider.name)

    # -- polling ---------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early (raising `Cancelled`) if cancel() is called."""
        if self._cancel_requested.is_set():
            raise self._cancelled_error()
        try:
            await asyncio.wait_for(self._cancel_requested.wait(), timeout=max(0.0, seconds))
        except asyncio.TimeoutError:
            if not self._cancel_requested.is_set():
                return
        raise self._cancelled_error()

    def _cancelled_error(self) -> Cancelled:
        if self._remote_cancelled:
            message = f"job {self.id} was cancelled; the provider stopped it"
        else:
            message = (
                f"job {self.id} was cancelled here, but {self.provider.name} could not stop it remotely: "
                f"it may finish and be billed; `{resume_hint(self.id)}` collects it"
            )
        return Cancelled(message, job_id=self.id, remote_cancelled=self._remote_cancelled)

    def _timeout(self, why: str) -> GenerationTimeout:
        return GenerationTimeout(
            f"job {self.id} {why}; it may still be running (and billed): `{resume_hint(self.id)}` picks it up "
            f"(or `reelgen.resume({self.id!r})`)",
            job_id=self.id,
        )

    async def _expired(self) -> GenerationTimeout:
        """The deadline passed with the job unfinished: cancel it where the provider allows."""
        if await self._cancel_remote("deadline"):
            return GenerationTimeout(
                f"job {self.id} did not finish before the deadline; it was cancelled at {self.provider.name}",
                job_id=self.id,
            )
        return self._timeout("did not finish before the deadline")

    async def _poll_until_done(self) -> ProviderOutput:
        job = self.provider_job
        assert job is not None
        started = job.submitted_at
        attempt = 0
        failures = 0
        estimate = await self._estimate()
        while True:
            remaining = self._remaining()
            if remaining <= 0:
                raise await self._expired()
            delay = self.provider.poll_delay(job, attempt, time.time() - started)
            if failures:
                delay = max(delay, backoff_delay(failures, base=1.0, cap=30.0))
            await self._sleep(min(delay, remaining))
            if self._remaining() <= 0:
                raise await self._expired()
            token = await self._throttle_query()
            try:
                status = await _counted(token, self.provider.poll(job))
            except TransientError as exc:
                # The job is still running remotely; one failed look must not fail it.
                failures += 1
                log.info("poll of %s failed transiently (%s); retrying", self.id, exc)
                self.emit("retrying", step="poll", attempt=failures, delay=0.0, reason=str(exc))
                continue
            if self._cancel_requested.is_set():
                raise self._cancelled_error()
            failures = 0
            attempt += 1
            await self._renew()
            await self._observe(status, started, estimate)
            if status.state == "succeeded":
                if status.output is None:
                    raise ProviderFailed(
                        "the provider reported success without a video URL",
                        provider=self.provider.name,
                        task_id=job.task_id,
                    )
                return status.output
            if status.state == "cancelled":
                self._remote_cancelled = True
                self.emit("cancelled", reason="cancelled at the provider", remote_cancelled=True)
                await self._journal_update(state="cancelled", finished_at=time.time())
                raise self._cancelled_error()
            if status.state == "failed":
                raise ProviderFailed(
                    status.message or "the job failed", provider=self.provider.name, task_id=job.task_id
                )
            if (
                status.state == "queued"
                and self._queue_timeout is not None
                and time.time() - started > self._queue_timeout
            ):
                stopped = await self._cancel_remote("queue_timeout")
                waited = f"waited more than queue_timeout={self._queue_timeout:g}s before {self.provider.name} ran it"
                if stopped:
                    raise GenerationTimeout(f"job {self.id} {waited}; it was cancelled (not billed)", job_id=self.id)
                raise self._timeout(f"{waited} and could not be cancelled")

    async def _observe(self, status: JobStatus, started: float, estimate: float | None) -> None:
        last = self._last_status
        if last is None or (last.state, last.raw_status) != (status.state, status.raw_status):
            self.emit("status", state=status.state, raw_status=status.raw_status, message=status.message)
        self._last_status = status
        if status.state in ("queued", "running") and self._journaled_state != status.state:
            await self._journal_update(state=status.state, heartbeat=time.time())
        else:
            await self._heartbeat()
        elapsed = time.time() - started
        fraction = status.progress
        if fraction is None and estimate:
            fraction = min(0.99, elapsed / estimate)
        eta = max(0.0, estimate - elapsed) if estimate else None
        self.emit("progress", phase="generating", fraction=fraction, elapsed=elapsed, eta=eta)

    async def _estimate(self) -> float | None:
        if self.request is None or self.provider_job is None:
            return None
        try:
            from .builtins.journal import timings_for

            timings = timings_for(self.config)
            if timings is None:
                return None
            width, height = parse_size(self.request.size)
            return await asyncio.to_thread(
                timings.estimate, self.provider.name, self.provider_job.model, self.request.duration, width * height
            )
        except Exception:  # noqa: BLE001 - an estimate is a nicety
            return None

    async def _cancel_remote(self, why: str) -> bool:
        job = self.provider_job
        if job is None or self._remote_cancelled:
            return self._remote_cancelled
        stopped = False
        if self.provider.capabilities.cancel != "none":
            try:
                token = await self._throttle_query()
                stopped = await _counted(token, asyncio.wait_for(self.provider.cancel(job), timeout=30))
            except (ReelgenError, asyncio.TimeoutError, OSError) as exc:
                log.warning("could not cancel %s: %s", self.id, exc)
        self._remote_cancelled = stopped
        self.emit("cancelled", reason=why, remote_cancelled=stopped)
        if stopped:
            await self._journal_update(state="cancelled", error=why, finished_at=time.time())
        return stopped

    async def _interrupted(self) -> None:
        """The waiting task was cancelled (Ctrl-C): stop the remote job, or leave it adoptable."""
        if self.provider_job is not None:
            stopped = await self._cancel_remote("interrupted")
            if not stopped:
                await self._let_go("interrupted; the job may still run and be billed")

    async def _let_go(self, why: str) -> None:
        """Give up driving a job that runs on: no owner, so an identical request or resume adopts it."""
        await self._journal_update(owner=None, error=why)

    async def _record_failure(self, exc: ReelgenError) -> bool:
        """Journal how the job ended here; return whether it is over at the provider."""
        if isinstance(exc, Cancelled):
            if not exc.remote_cancelled:
                await self._let_go(str(exc))
            return exc.remote_cancelled
        if self._mode == "follow" or isinstance(exc, (SubmissionUnknown, DeliveryFailed, JournalError)):
            return isinstance(exc, DeliveryFailed)
        if isinstance(exc, GenerationTimeout):
            self.emit("failed", error=str(exc), error_type=type(exc).__name__)
            if self.provider_job is not None and not self._remote_cancelled:
                await self._let_go(str(exc))  # still running: an identical request or resume adopts it
                return False
            return True
        await self._journal_update(state="failed", error=str(exc), finished_at=time.time())
        self.emit("failed", error=str(exc), error_type=type(exc).__name__)
        return True

    # -- delivery ----------------------------------------------------------------------

    async def _deliver(self, output: ProviderOutput) -> VideoResult:
        job = self.provider_job
        assert job is not None
        if self._cancel_requested.is_set():
            raise self._cancelled_error()
        await self._journal_update(state="delivering", usage=dict(output.usage), heartbeat=time.time())
        delivery = Delivery(
            provider=self.provider,
            config=self.config,
            job=job,
            request=self.request,
            key=self.key,
            warnings=self._warnings,
            use_cache=self.use_cache,
            emit=self.emit,
            deadline_at=self._deadline_at,
            sleep=self._sleep,
        )
        try:
            result = await deliver(delivery, output)
        except DeliveryFailed as exc:
            await self._journal_update(state="delivery_failed", error=str(exc))
            self.emit("delivery_failed", error=str(exc), resume=resume_hint(self.id))
            raise
        await self._journal_update(state="succeeded", result=result, finished_at=time.time())
        await self._record_timing(job)
        self.emit("succeeded", video_url=result.video_url, warnings=result.warnings)
        return result

    async def _record_timing(self, job: ProviderJob) -> None:
        if self.request is None:
            return
        try:
            from .builtins.journal import timings_for

            timings = timings_for(self.config)
            if timings is not None:
                width, height = parse_size(self.request.size)
                await asyncio.to_thread(
                    timings.record,
                    self.provider.name,
                    job.model,
                    self.request.duration,
                    width * height,
                    time.time() - job.submitted_at,
                )
        except Exception:
            log.debug("could not record the timing of %s", self.id, exc_info=True)


def _proved_not_created(exc: BaseException) -> bool:
    """Did the provider prove that the failed create made no task? 429 and "never sent" do;
    a lost reply, 408 and 5xx do not (the task list decides)."""
    if isinstance(exc, SubmissionUnknown):
        return False
    if isinstance(exc, RateLimited):
        return True
    status = getattr(exc, "status_code", None)
    return status is None or not (status == 408 or status >= 500)


def _entry_error(entry: JournalEntry, provider: str) -> ReelgenError:
    """The error a follower raises for a job that ended elsewhere without a video."""
    ref = entry.ref
    if entry.state == "cancelled":
        return Cancelled(f"job {ref} was cancelled", job_id=ref, remote_cancelled=True)
    if entry.state == "delivery_failed":
        return DeliveryFailed(
            f"job {ref} finished but its video is not stored yet ({entry.error}): `{resume_hint(ref)}` finishes it",
            job_id=ref,
        )
    if entry.state == "unknown":
        error = SubmissionUnknown(
            f"the create call for job {ref} ended ambiguously ({entry.error}); a billed task may exist: run "
            f"`{resume_hint(ref)}` to reconcile it, or submit again with --force (force=True) to pay for a new task",
            provider=provider,
        )
        error.job_id = ref
        error.candidates = tuple(entry.candidates)
        return error
    return ProviderFailed(entry.error or f"job {ref} failed", provider=provider, task_id=entry.task_id)
