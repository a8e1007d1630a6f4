"""What one job carries, and the plumbing its steps share: events, journal writes, governor, sleep.

`reelgen.jobs.Job` is built on `JobCore`; the steps (`reelgen._creating`,
`reelgen._polling`, `reelgen._following`) are functions of a `JobCore`. This module
also keeps the in-process single-flight registry and the journal's record of a
provider job.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from . import _hooks
from ._delivery import resume_hint
from .config import Config
from .contract import VideoRequest, VideoResult
from .errors import Cancelled, GenerationTimeout
from .events import Event, EventKind
from .journal import HEARTBEAT_EVERY, Journal, JournalEntry, JournalError, Owner
from .provider import JobStatus, Provider, ProviderJob

__all__ = ["EventCallback", "JobCore", "Mode", "counted", "flight", "job_from_record", "job_record"]

log = logging.getLogger("reelgen.jobs")

_T = TypeVar("_T")

EventCallback = Callable[[Event], Any]
Mode = Literal["drive", "follow", "recover"]

#: (id(loop), cache key) -> the job driving that key in that loop (in-process single-flight).
_flights: dict[tuple[int, str], JobCore] = {}
#: The loop each job registered in (ids of finished loops are reused by new ones).
_flight_loops: weakref.WeakKeyDictionary[JobCore, asyncio.AbstractEventLoop] = weakref.WeakKeyDictionary()


async def counted(token: Any, call: Awaitable[_T]) -> _T:
    """Await a provider call, then tell the governor it ended: a rate window counts a call
    from its end, since the service counts it on arrival (`reelgen.governor.Token`)."""
    try:
        return await call
    finally:
        await token.done()


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


def flight(key: str) -> JobCore | None:
    """The job this event loop is driving for `key`, if any."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    job = _flights.get((id(loop), key))
    if job is None or job.finished or _flight_loops.get(job) is not loop:
        return None
    return job


class JobCore:
    """The state of one generation and the calls every step of it makes."""

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
        leader: JobCore | None = None,
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
        #: The task was adopted from the provider's task list (not named by our create's
        #: reply): its output is checked against the request before it is delivered as ours.
        self._adopted = False
        #: The create in flight (`begin`): callers that attach meanwhile wait for it.
        self._starting: asyncio.Future[None] | None = None
        #: This handle let the job go (`_let_go`): another process or handle may own it now.
        self._released = False
        #: `cancel()` was called on this handle, and whether `wait()` already returned through it.
        self._cancelled_here = False
        self._returned = False

    @property
    def _lead(self) -> JobCore:
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
    def finished(self) -> bool:
        """Done, failed or given up: nothing more will happen through this handle."""
        lead = self._lead
        if lead._result is not None or lead._remote_cancelled or lead._released:
            return True
        return lead._driver is not None and lead._driver.done()

    # -- in-process single-flight ----------------------------------------------------

    def register(self) -> None:
        """Make this job the one identical requests in this event loop attach to."""
        if self.key is not None and self.use_cache:
            loop = asyncio.get_running_loop()
            _flights[(id(loop), self.key)] = self
            _flight_loops[self] = loop

    def _unregister(self) -> None:
        for flight, job in list(_flights.items()):
            if job is self:
                del _flights[flight]

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

    async def _journal_update(self, *, loud: bool = False, fact: bool = False, **changes: Any) -> None:
        """Write `changes` to this job's entry, as its owner. `loud`: a failure raises.

        Once this handle let the job go, it writes nothing more (the entry may have a new
        owner), except a `fact` about the task itself (the provider stopped it), which is
        written whoever owns the entry.
        """
        if self._journal is None or self._entry is None or (self._released and not fact):
            return
        try:
            updated = await asyncio.to_thread(
                self._journal.update, self._entry.id, expect_owner=None if fact else self._entry.owner, **changes
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

    async def _let_go(self, why: str) -> None:
        """Give up driving a job that runs on: no owner, so an identical request or resume adopts it.
        This handle writes nothing more to the entry, and identical requests no longer attach to it.
        An entry another process owns (this handle follows it) is left to that process."""
        if self._entry is not None and self._entry.owner == self._owner:
            await self._journal_update(owner=None, error=why)
        self._released = True
        self._unregister()

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
                entry = self._entry.id if self._entry is not None else None
                await governor.renew_job(account, self.provider_job.id, entry=entry)
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

    # -- time --------------------------------------------------------------------------

    def _remaining(self) -> float:
        return self._deadline_at - time.monotonic()

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

    # -- errors ------------------------------------------------------------------------

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

    def _too_late(self, what: str) -> GenerationTimeout:
        return GenerationTimeout(
            f"the deadline passed {what}; nothing was submitted to {self.provider.name} (no task was created)",
            job_id=None,
        )
