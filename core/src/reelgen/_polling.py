"""Waiting on a created job: the poll loop, its retries, the deadline and queue timeout, and cancel.

Polls follow the provider's schedule through the account governor (each look is a
query token). A look that fails transiently (429, 5xx, a reset) says nothing about the
job: it is retried after a backoff that honours the provider's `retry_after`, bounded
by the deadline. On expiry the remote job is cancelled where the provider allows it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ._jobcore import JobCore, counted
from ._retry import backoff_delay
from .contract import parse_size
from .errors import GenerationTimeout, ProviderFailed, ReelgenError, TransientError
from .provider import JobStatus, ProviderOutput

__all__ = ["cancel_remote", "interrupted", "poll_until_done"]

log = logging.getLogger("reelgen.jobs")


async def _expired(job: JobCore) -> GenerationTimeout:
    """The deadline passed with the job unfinished: cancel it where the provider allows."""
    if await cancel_remote(job, "deadline"):
        return GenerationTimeout(
            f"job {job.id} did not finish before the deadline; it was cancelled at {job.provider.name}",
            job_id=job.id,
        )
    return job._timeout("did not finish before the deadline")


async def poll_until_done(job: JobCore) -> ProviderOutput:
    """Poll until the provider says the job ended; return its output (or raise how it ended)."""
    pj = job.provider_job
    assert pj is not None
    started = pj.submitted_at
    attempt = 0
    failures = 0
    #: After a failed look: how long to wait before the next one (backoff, Retry-After).
    pause = 0.0
    estimate = await _estimate(job)
    while True:
        remaining = job._remaining()
        if remaining <= 0:
            raise await _expired(job)
        delay = job.provider.poll_delay(pj, attempt, time.time() - started)
        if failures:
            delay = max(delay, pause)
        await job._sleep(min(delay, remaining))
        if job._remaining() <= 0:
            raise await _expired(job)
        token = await job._throttle_query()
        try:
            status = await counted(token, job.provider.poll(pj))
        except TransientError as exc:
            # The job is still running remotely; one failed look must not fail it.
            # A 429 says the account's query rate is spent: looking again at once only earns
            # another. Back off (at least the provider's Retry-After), within the deadline.
            failures += 1
            pause = min(backoff_delay(failures, base=1.0, cap=30.0, hint=exc.retry_after), max(0.0, job._remaining()))
            log.info("poll of %s failed transiently (%s); retrying in %.1fs", job.id, exc, pause)
            job.emit("retrying", step="poll", attempt=failures, delay=pause, reason=str(exc))
            continue
        if job._cancel_requested.is_set():
            raise job._cancelled_error()
        failures = 0
        attempt += 1
        await job._renew()
        await _observe(job, status, started, estimate)
        if status.state == "succeeded":
            if status.output is None:
                raise ProviderFailed(
                    "the provider reported success without a video URL",
                    provider=job.provider.name,
                    task_id=pj.task_id,
                )
            return status.output
        if status.state == "cancelled":
            job._remote_cancelled = True
            job.emit("cancelled", reason="cancelled at the provider", remote_cancelled=True)
            await job._journal_update(state="cancelled", finished_at=time.time())
            raise job._cancelled_error()
        if status.state == "failed":
            raise ProviderFailed(status.message or "the job failed", provider=job.provider.name, task_id=pj.task_id)
        if status.state == "queued" and job._queue_timeout is not None and time.time() - started > job._queue_timeout:
            stopped = await cancel_remote(job, "queue_timeout")
            waited = f"waited more than queue_timeout={job._queue_timeout:g}s before {job.provider.name} ran it"
            if stopped:
                raise GenerationTimeout(f"job {job.id} {waited}; it was cancelled (not billed)", job_id=job.id)
            raise job._timeout(f"{waited} and could not be cancelled")


async def _observe(job: JobCore, status: JobStatus, started: float, estimate: float | None) -> None:
    last = job._last_status
    if last is None or (last.state, last.raw_status) != (status.state, status.raw_status):
        job.emit("status", state=status.state, raw_status=status.raw_status, message=status.message)
    job._last_status = status
    if status.state in ("queued", "running") and job._journaled_state != status.state:
        await job._journal_update(state=status.state, heartbeat=time.time())
    else:
        await job._heartbeat()
    elapsed = time.time() - started
    fraction = status.progress
    if fraction is None and estimate:
        fraction = min(0.99, elapsed / estimate)
    eta = max(0.0, estimate - elapsed) if estimate else None
    job.emit("progress", phase="generating", fraction=fraction, elapsed=elapsed, eta=eta)


async def _estimate(job: JobCore) -> float | None:
    if job.request is None or job.provider_job is None:
        return None
    try:
        from .builtins.journal import timings_for

        timings = timings_for(job.config)
        if timings is None:
            return None
        width, height = parse_size(job.request.size)
        return await asyncio.to_thread(
            timings.estimate, job.provider.name, job.provider_job.model, job.request.duration, width * height
        )
    except Exception:  # noqa: BLE001 - an estimate is a nicety
        return None


async def cancel_remote(job: JobCore, why: str) -> bool:
    """Ask the provider to stop the job; journal it `cancelled` when it did. Returns whether it stopped."""
    pj = job.provider_job
    if pj is None or job._remote_cancelled:
        return job._remote_cancelled
    stopped = False
    if job.provider.capabilities.cancel != "none":
        try:
            token = await job._throttle_query()
            stopped = await counted(token, asyncio.wait_for(job.provider.cancel(pj), timeout=30))
        except (ReelgenError, asyncio.TimeoutError, OSError) as exc:
            log.warning("could not cancel %s: %s", job.id, exc)
    job._remote_cancelled = stopped
    job.emit("cancelled", reason=why, remote_cancelled=stopped)
    if stopped:
        # Terminal at once, whoever owns the entry: an identical request must not attach to it.
        await job._journal_update(fact=True, state="cancelled", error=why, finished_at=time.time())
        job._unregister()
    return stopped


async def interrupted(job: JobCore) -> None:
    """The waiting task was cancelled (Ctrl-C): stop the remote job, or leave it adoptable."""
    if job.provider_job is not None:
        stopped = await cancel_remote(job, "interrupted")
        if not stopped:
            await job._let_go("interrupted; the job may still run and be billed")
