"""A submitted generation, from the provider's job to a stored, measured, cached result.

`Job.wait()` polls on the provider's schedule within an overall deadline, downloads the
video (retrying transient faults and truncation, since a download is free and
idempotent), measures it with PyAV, stores it through `reelgen_store_video`, records it
in the cache and the job store, and returns the `VideoResult`. Cancelling the waiting
task (Ctrl-C) or calling `Job.cancel()` cancels the remote job where the provider can.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Config
from .context import using_config
from .contract import VideoRequest, VideoResult, parse_size
from .download import VideoSource, download_video
from .errors import (
    Cancelled,
    GenerationTimeout,
    IntegrityError,
    ProviderError,
    ProviderFailed,
    ReelgenError,
    StorageError,
    TransientError,
)
from .events import Event, EventKind
from .measure import measurement_warnings
from .media import VideoProbe, probe_video
from .plugins import acall_firstresult, call_safely, get_plugin_manager
from .provider import JobStatus, Provider, ProviderJob, ProviderOutput
from .retry import backoff_delay
from .store import SqliteStore

__all__ = ["EventCallback", "Job"]

log = logging.getLogger("reelgen.jobs")

EventCallback = Callable[[Event], Any]

_DOWNLOAD_ATTEMPTS = 4
_PROGRESS_STEP = 0.02


class Job:
    """A durable handle on one generation. `id` is `provider:task_id`; see `reelgen.resume`."""

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
        jobs: SqliteStore | None = None,
    ) -> None:
        self.provider = provider
        self.config = config
        self.request = request
        self.key = key
        self.provider_job = job
        self._warnings = list(warnings)
        self._result = result
        #: Absolute deadline on the `time.monotonic()` clock.
        self._deadline_at = deadline_at
        self._on_event = on_event
        self._jobs = jobs
        self._cancel_requested = asyncio.Event() if result is None else None
        self._remote_cancelled = False
        self._last_status: JobStatus | None = None

    # -- public face -----------------------------------------------------------------

    @property
    def id(self) -> str | None:
        """`provider:task_id`, or None for a result served from the cache."""
        return self.provider_job.id if self.provider_job else None

    @property
    def task_id(self) -> str | None:
        return self.provider_job.task_id if self.provider_job else None

    @property
    def done(self) -> bool:
        return self._result is not None

    async def status(self) -> JobStatus:
        """Ask the provider once for the job's state (no waiting, no download)."""
        if self._result is not None or self.provider_job is None:
            raw = "CACHED" if self._result is not None and self._result.cached else "SUCCEEDED"
            return JobStatus(state="succeeded", raw_status=raw)
        return await self.provider.poll(self.provider_job)

    async def cancel(self) -> bool:
        """Cancel the remote job. Returns whether the provider stopped it (and won't bill it).

        A provider that cannot cancel a running job returns False: the job runs on and is
        billed; `wait()` then raises `Cancelled` without waiting for it.
        """
        if self._result is not None or self.provider_job is None:
            return False
        # Ask the provider first, so the woken waiter reports the real outcome.
        stopped = await self._cancel_remote("cancel() called")
        if self._cancel_requested is not None:
            self._cancel_requested.set()
        return stopped

    async def wait(self) -> VideoResult:
        """Wait for the video, store and measure it, and return the result."""
        if self._result is not None:
            return self._result
        assert self.provider_job is not None
        try:
            with using_config(self.config):
                output = await self._poll_until_done()
                result = await self._finish(output)
        except asyncio.CancelledError:
            await asyncio.shield(self._cancel_remote("interrupted"))
            raise
        except ReelgenError as exc:
            self._record_failure(exc)
            raise
        self._result = result
        return result

    # -- events ----------------------------------------------------------------------

    def emit(self, kind: EventKind, **data: Any) -> None:
        event = Event(kind=kind, provider=self.provider.name, job_id=self.id, data=data)
        pm = get_plugin_manager()
        for impl in reversed(pm.hook.reelgen_event.get_hookimpls()):
            self._schedule(call_safely(impl.function, event=event))
        if self._on_event is not None:
            self._schedule(call_safely(self._on_event, event))

    @staticmethod
    def _schedule(outcome: Any) -> None:
        if asyncio.iscoroutine(outcome):
            task = asyncio.get_running_loop().create_task(outcome)
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # -- polling ---------------------------------------------------------------------

    def _remaining(self) -> float:
        return self._deadline_at - time.monotonic()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early if cancel() is called."""
        assert self._cancel_requested is not None
        try:
            await asyncio.wait_for(self._cancel_requested.wait(), timeout=max(0.0, seconds))
        except asyncio.TimeoutError:
            return
        raise self._cancelled_error()

    def _cancelled_error(self) -> Cancelled:
        if self._remote_cancelled:
            message = f"job {self.id} was cancelled; the provider stopped it"
        else:
            message = (
                f"job {self.id} was cancelled here, but {self.provider.name} could not stop it remotely: "
                "it may finish and be billed"
            )
        return Cancelled(message, job_id=self.id, remote_cancelled=self._remote_cancelled)

    async def _poll_until_done(self) -> ProviderOutput:
        job = self.provider_job
        assert job is not None
        started = job.submitted_at
        attempt = 0
        failures = 0
        estimate = self._estimate()
        while True:
            remaining = self._remaining()
            if remaining <= 0:
                raise self._timeout()
            delay = self.provider.poll_delay(job, attempt, time.time() - started)
            if failures:
                delay = max(delay, backoff_delay(failures, base=1.0, cap=30.0))
            await self._sleep(min(delay, remaining))
            if self._remaining() <= 0:
                raise self._timeout()
            try:
                status = await self.provider.poll(job)
            except TransientError as exc:
                # The job is still running remotely; one failed look must not fail it.
                failures += 1
                log.info("poll of %s failed transiently (%s); retrying", self.id, exc)
                continue
            failures = 0
            attempt += 1
            self._observe(status, started, estimate)
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
                self._save_state("cancelled")
                raise self._cancelled_error()
            if status.state == "failed":
                raise ProviderFailed(
                    status.message or "the job failed", provider=self.provider.name, task_id=job.task_id
                )

    def _observe(self, status: JobStatus, started: float, estimate: float | None) -> None:
        last = self._last_status
        if last is None or (last.state, last.raw_status) != (status.state, status.raw_status):
            self.emit("status", state=status.state, raw_status=status.raw_status, message=status.message)
        self._last_status = status
        elapsed = time.time() - started
        fraction = status.progress
        if fraction is None and estimate:
            fraction = min(0.99, elapsed / estimate)
        eta = max(0.0, estimate - elapsed) if estimate else None
        self.emit("progress", phase="generating", fraction=fraction, elapsed=elapsed, eta=eta)

    def _timeout(self) -> GenerationTimeout:
        return GenerationTimeout(
            f"job {self.id} did not finish before the deadline; it may still be running (and billed): "
            f"resume it with `reelgen.resume({self.id!r})`",
            job_id=self.id,
        )

    def _estimate(self) -> float | None:
        if self._jobs is None or self.request is None or self.provider_job is None:
            return None
        width, height = parse_size(self.request.size)
        try:
            return self._jobs.timing_estimate(
                self.provider.name, self.provider_job.model, self.request.duration, width * height
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
                stopped = await asyncio.wait_for(self.provider.cancel(job), timeout=30)
            except (ProviderError, asyncio.TimeoutError, OSError) as exc:
                log.warning("could not cancel %s: %s", self.id, exc)
        self._remote_cancelled = stopped
        self.emit("cancelled", reason=why, remote_cancelled=stopped)
        self._save_state("cancelled" if stopped else "abandoned", error=why)
        return stopped

    # -- download, measure, store ----------------------------------------------------

    async def _finish(self, output: ProviderOutput) -> VideoResult:
        job = self.provider_job
        assert job is not None
        spool = Path(tempfile.mkdtemp(prefix="reelgen-"))
        try:
            source, probe = await self._download_verified(output, spool)
            seed = output.seed if output.seed is not None else job.seed
            warnings = self._warnings + list(job.warnings) + list(output.warnings)
            if self.request is not None:
                warnings += measurement_warnings(self.request, probe, seed=seed, known=warnings)
            draft = VideoResult(
                video_url=output.source_url,
                duration=probe.duration,
                fps=probe.fps,
                seed=seed,
                size=probe.size,
                provider=self.provider.name,
                model=job.model,
                task_id=job.task_id,
                source_url=output.source_url,
                expires_at=output.expires_at,
                sha256=source.sha256,
                bytes=source.bytes,
                warnings=list(dict.fromkeys(warnings)),
                usage=dict(output.usage),
            )
            result = await self._store(draft, source)
        finally:
            shutil.rmtree(spool, ignore_errors=True)
        await self._remember(result)
        self.emit("succeeded", video_url=result.video_url, warnings=result.warnings)
        return result

    async def _download_verified(self, output: ProviderOutput, spool: Path) -> tuple[VideoSource, VideoProbe]:
        loop = asyncio.get_running_loop()
        last_fraction = -1.0

        def progress(received: int, total: int | None) -> None:
            nonlocal last_fraction
            fraction = received / total if total else None
            if fraction is None or fraction - last_fraction >= _PROGRESS_STEP or fraction >= 1.0:
                last_fraction = fraction if fraction is not None else last_fraction
                loop.call_soon_threadsafe(
                    lambda: self.emit("progress", phase="downloading", bytes=received, total=total, fraction=fraction)
                )

        key = self.key or (self.provider_job.task_id if self.provider_job else "video")
        problem: ReelgenError | None = None
        for attempt in range(1, _DOWNLOAD_ATTEMPTS + 1):
            try:
                source = await asyncio.to_thread(
                    download_video,
                    output.source_url,
                    directory=spool,
                    key=key,
                    max_bytes=self.config.storage.max_bytes,
                    headers=output.download_headers,
                    on_progress=progress,
                )
                self.emit("downloaded", bytes=source.bytes, sha256=source.sha256)
                probe = await asyncio.to_thread(probe_video, source.path, decode=True)
                return source, probe
            except (TransientError, IntegrityError) as exc:
                # Free and idempotent until the URL expires; a corrupt copy is worth another try.
                if isinstance(exc, IntegrityError) and "storage cap" in str(exc):
                    raise
                problem = exc
                log.info("download attempt %d of %s failed: %s", attempt, self.id, exc)
                if attempt < _DOWNLOAD_ATTEMPTS:
                    await self._sleep(min(backoff_delay(attempt, base=0.5, cap=8.0), max(0.0, self._remaining())))
        raise StorageError(
            f"could not download a valid video for {self.id} after {_DOWNLOAD_ATTEMPTS} attempts: {problem}; "
            f"the provider's URL stays valid until {output.expires_at or 'it expires'}: resume with "
            f"`reelgen.resume({self.id!r})`"
        )

    async def _store(self, draft: VideoResult, source: VideoSource) -> VideoResult:
        pm = get_plugin_manager()
        request = self.request or VideoRequest(prompt="(resumed job)")
        try:
            stored = await acall_firstresult(
                pm.hook.reelgen_store_video,
                request=request,
                result=draft,
                source=source,
                config=self.config,
                job_id=self.id,
            )
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"storing the video failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(stored, VideoResult):
            raise StorageError("no storage plugin stored the video (reelgen_store_video returned nothing)")
        if stored.video_url == draft.source_url:
            raise StorageError("the storage plugin returned the provider's expiring URL instead of a durable one")
        if stored.sha256 != source.sha256 or stored.bytes != source.bytes:
            raise StorageError("the stored video does not match the downloaded one (sha256 or size differ)")
        self.emit("stored", video_url=stored.video_url, bytes=stored.bytes)
        return stored

    async def _remember(self, result: VideoResult) -> None:
        """Cache, job store and timing; failures here are logged, never lose the result."""
        pm = get_plugin_manager()
        if self.key is not None and self.request is not None and self.config.cache.enabled:
            for impl in reversed(pm.hook.reelgen_cache_put.get_hookimpls()):
                outcome = call_safely(impl.function, key=self.key, request=self.request, result=result)
                if asyncio.iscoroutine(outcome):
                    try:
                        await outcome
                    except Exception:
                        log.exception("cache plugin %s failed to store %s", impl.plugin_name, self.key)
        job = self.provider_job
        timing = None
        if job is not None and self.request is not None:
            width, height = parse_size(self.request.size)
            timing = (
                self.provider.name,
                job.model,
                self.request.duration,
                width * height,
                time.time() - job.submitted_at,
            )
        self._save_state("succeeded", result=result, timing=timing)

    def _save_state(
        self,
        state: str,
        *,
        result: VideoResult | None = None,
        error: str | None = None,
        timing: tuple[str, str, float, int, float] | None = None,
    ) -> None:
        if self._jobs is None or self.id is None:
            return
        try:
            self._jobs.job_update(self.id, state=state, result=result, error=error, timing=timing)
        except Exception:
            log.warning("could not update job %s in the job store", self.id, exc_info=True)

    def _record_failure(self, exc: ReelgenError) -> None:
        if isinstance(exc, Cancelled):
            return
        if isinstance(exc, GenerationTimeout):
            self._save_state("timed_out", error=str(exc))
        else:
            self._save_state("failed", error=str(exc))
        self.emit("failed", error=str(exc), error_type=type(exc).__name__)
