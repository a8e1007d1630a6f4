"""A generation being waited on: `Job`, the handle `reelgen.submit` and `reelgen.resume` return.

`Job.wait()` drives the job to a stored result within the deadline: the create
(`reelgen._creating`: journaled, retried only where the provider proves no task was
created, an ambiguous create reconciled through the provider's task list), the polls
(`reelgen._polling`: on the provider's schedule through the account governor), then the
delivery (`reelgen._delivery`). Every step is written to the job journal, so another
process can follow the job, adopt it when this one dies, or resume it
(`reelgen._following`). Several callers in one event loop share one driver
(single-flight). Cancelling the waiting task (Ctrl-C) or calling `Job.cancel()` cancels
the remote job where the provider can.
"""

from __future__ import annotations

import asyncio
import logging
import time

from . import _creating, _following, _polling
from ._delivery import Delivery, deliver, resume_hint
from ._jobcore import EventCallback, JobCore, counted, flight, job_from_record, job_record
from .contract import VideoResult, parse_size
from .errors import Cancelled, DeliveryFailed, GenerationTimeout, ReelgenError, SubmissionUnknown
from .journal import JournalError
from .provider import JobStatus, ProviderJob, ProviderOutput

__all__ = ["EventCallback", "Job", "in_flight", "job_from_record", "job_record"]

log = logging.getLogger("reelgen.jobs")


def in_flight(key: str) -> Job | None:
    """The job this event loop is driving for `key`, if any."""
    job = flight(key)
    return job if isinstance(job, Job) else None


class Job(JobCore):
    """A durable handle on one generation. `id` is `provider:task_id` (or the journal entry's
    `j-...` id while the provider has not named the task); see `reelgen.resume`."""

    # -- public face -----------------------------------------------------------------

    @property
    def _head(self) -> Job:
        """The job this handle shares (itself, or the one it attached to)."""
        lead = self._lead
        assert isinstance(lead, Job)
        return lead

    @property
    def entry_id(self) -> str | None:
        """The journal entry's permanent id (`j-...`), if the job is journaled."""
        return self._lead._entry.id if self._lead._entry is not None else None

    @property
    def task_id(self) -> str | None:
        lead = self._head
        if lead.provider_job is not None:
            return lead.provider_job.task_id
        return lead._entry.task_id if lead._entry is not None else None

    @property
    def done(self) -> bool:
        return self._lead._result is not None

    async def status(self) -> JobStatus:
        """Ask the provider once for the job's state (no waiting, no download)."""
        lead = self._head
        if lead._result is not None:
            raw = "CACHED" if lead._result.cached else "SUCCEEDED"
            return JobStatus(state="succeeded", raw_status=raw)
        if lead.provider_job is None and lead._entry is not None and lead._entry.job is not None:
            lead.provider_job = job_from_record(lead._entry.job)
        if lead.provider_job is None:
            return JobStatus(state="queued", raw_status=(lead._entry.state if lead._entry else "SUBMITTING").upper())
        token = await lead._throttle_query()
        return await counted(token, lead.provider.poll(lead.provider_job))

    async def cancel(self) -> bool:
        """Cancel the remote job. Returns whether the provider stopped it (and won't bill it).

        A stopped job is `cancelled` in the journal at once, so an identical request makes a
        new job. A provider that cannot cancel a running job returns False: the job runs on
        and is billed; `wait()` on this handle then raises `Cancelled` without waiting for it,
        and the job is left to the next identical request (or `reelgen jobs resume`), which
        adopts it and delivers its video.
        """
        lead = self._head
        self._cancelled_here = True
        if lead._result is not None:
            return False
        if lead.provider_job is None and lead._entry is not None and lead._entry.job is not None:
            lead.provider_job = job_from_record(lead._entry.job)
        # Ask the provider first, so the woken waiter reports the real outcome.
        stopped = await _polling.cancel_remote(lead, "cancel() called") if lead.provider_job is not None else False
        lead._cancel_requested.set()
        lead._unregister()  # nothing more comes of this handle: identical requests do not attach to it
        if lead.provider_job is not None and (lead._driver is None or lead._driver.done()):
            # Nobody drives it here (a driver sees the cancel and does this itself).
            if stopped:
                await lead._release(terminal=True)
            else:
                await lead._let_go("cancelled here, but the provider could not stop it: it may finish and be billed")
        return stopped

    async def wait(self) -> VideoResult:
        """Wait for the video, store and measure it, and return the result.

        After `cancel()` on this handle it raises `Cancelled`, even where the job had
        finished through another handle first (unless this handle already returned it)."""
        lead = self._head
        result = lead._result if lead._result is not None else await self._await_driver(lead)
        if self._cancelled_here and not self._returned:
            raise Cancelled(
                f"job {self.id} was cancelled here after it had finished; its video is {result.video_url}",
                job_id=self.id,
                remote_cancelled=False,
            )
        self._returned = True
        return result

    async def _await_driver(self, lead: Job) -> VideoResult:
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

    async def _drive(self) -> VideoResult:
        terminal = False
        try:
            result = await self._run()
            terminal = True
        except asyncio.CancelledError:
            await asyncio.shield(_polling.interrupted(self))
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

    async def _run(self) -> VideoResult:
        if self._starting is not None and not self._starting.done():
            await asyncio.shield(self._starting)  # attached while the create was in flight
        if self._mode == "follow":
            followed = await _following.follow(self)
            if followed is not None:
                return followed
        # The heartbeat means "driving": kept fresh however long a poll interval or the
        # download takes, and let go stale when nothing drives the job, so a follower adopts.
        beating = asyncio.ensure_future(self._beat())
        try:
            if self._mode == "recover":
                await _following.recover(self)
                if self._result is not None:
                    return self._result
            output = await _polling.poll_until_done(self)
            # The task has ended at the provider: its account slot is free now, not after delivery.
            await asyncio.shield(self._release(terminal=True))
            return await self._deliver(output)
        finally:
            beating.cancel()

    # -- creating ----------------------------------------------------------------------

    async def begin(self) -> None:
        """Send the create, so that callers attaching meanwhile wait for it. Called by `submit`."""
        self._starting = asyncio.ensure_future(_creating.start(self))
        await self._starting

    async def start(self) -> None:
        """Send the create (the entry is already journaled as `submitting`)."""
        await _creating.start(self)

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
        await _creating.verify_adopted(self, output)
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
