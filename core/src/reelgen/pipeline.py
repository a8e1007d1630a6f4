"""`video.generate`: validate, look in the cache, submit, wait, store, verify, remember.

```
validate (capabilities, then the provider) -> cache lookup -> submit (retrying only what
was certainly not created) -> Job.wait(): poll -> download -> measure -> store -> cache
```
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .cachekey import cache_key
from .config import Config, load_config
from .context import using_config
from .contract import VideoRequest, VideoResult
from .errors import GenerationTimeout, RateLimited, TransientError, ValidationError
from .images import image_key
from .jobs import EventCallback, Job
from .plugins import acall_firstresult, get_plugin_manager
from .provider import Provider, ProviderJob
from .registry import get_provider
from .retry import backoff_delay
from .serialization import structure
from .store import SqliteStore, open_store
from .validation import check_request, enforce_strict

__all__ = ["agenerate", "generate", "request_key", "resume", "submit", "validate"]

log = logging.getLogger("reelgen.pipeline")

_SUBMIT_ATTEMPTS = 8


def _provider(provider: str | Provider | None, config: Config) -> Provider:
    if provider is None or isinstance(provider, str):
        return get_provider(provider, config=config)
    return provider


def validate(
    request: VideoRequest, provider: str | Provider | None = None, *, config: Config | None = None, strict: bool = False
) -> list[str]:
    """Check `request` against the provider, offline. Returns warnings; raises `ValidationError`."""
    config = config or load_config()
    chosen = _provider(provider, config)
    with using_config(config):
        warnings = check_request(request, chosen.capabilities, provider=chosen.name)
        warnings += chosen.validate(request)
    enforce_strict(warnings, strict)
    return list(dict.fromkeys(warnings))


def request_key(request: VideoRequest, provider: str | Provider | None = None, *, config: Config | None = None) -> str:
    """The cache key `request` has with this provider (see `reelgen.cachekey`)."""
    config = config or load_config()
    chosen = _provider(provider, config)
    return cache_key(request, provider=chosen.name, model=chosen.capabilities.model)


def _jobs_store(config: Config) -> SqliteStore | None:
    if config.jobs.url.strip().lower() in ("none", ""):
        return None
    return open_store(config.jobs.url)


async def _submit_once_safe(provider: Provider, request: VideoRequest, deadline_at: float) -> ProviderJob:
    """Submit, retrying only faults where the provider guarantees no job was created."""
    for attempt in range(1, _SUBMIT_ATTEMPTS + 1):
        try:
            return await provider.submit(request)
        except TransientError as exc:
            remaining = deadline_at - time.monotonic()
            delay = backoff_delay(attempt, base=1.0, cap=30.0, hint=exc.retry_after)
            if attempt == _SUBMIT_ATTEMPTS or delay >= remaining:
                raise
            kind = "throttled" if isinstance(exc, RateLimited) else "failed transiently"
            log.info("submit to %s %s (%s); retrying in %.1fs", provider.name, kind, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def submit(
    request: VideoRequest,
    provider: str | Provider | None = None,
    *,
    config: Config | None = None,
    strict: bool = False,
    use_cache: bool = True,
    on_event: EventCallback | None = None,
    deadline: float | None = None,
) -> Job:
    """Validate and start a generation; return its `Job` (already done on a cache hit)."""
    config = config or load_config()
    chosen = _provider(provider, config)
    with using_config(config):
        warnings = validate(request, chosen, config=config, strict=strict)
        digest = image_key(request.reference_image) if request.reference_image is not None else None
        key = cache_key(request, provider=chosen.name, model=chosen.capabilities.model, image_digest=digest)
        jobs = _jobs_store(config)
        common: dict[str, Any] = {
            "provider": chosen,
            "config": config,
            "request": request,
            "key": key,
            "on_event": on_event,
            "jobs": jobs,
        }
        if use_cache and config.cache.enabled:
            pm = get_plugin_manager()
            cached = await acall_firstresult(pm.hook.reelgen_cache_get, key=key, request=request)
            if cached is not None:
                job = Job(warnings=warnings, result=cached, deadline_at=time.monotonic(), **common)
                job.emit("cache_hit", key=key, video_url=cached.video_url)
                return job
        started = time.monotonic()
        deadline_at = started + (deadline if deadline is not None else config.deadline)
        try:
            provider_job = await _submit_once_safe(chosen, request, deadline_at)
        except TransientError as exc:
            if time.monotonic() >= deadline_at:
                raise GenerationTimeout(f"could not submit to {chosen.name} before the deadline: {exc}") from exc
            raise
        job = Job(warnings=warnings, job=provider_job, deadline_at=deadline_at, **common)
        if jobs is not None:
            try:
                jobs.job_put(
                    provider_job.id,
                    provider=chosen.name,
                    job=_job_record(provider_job),
                    state="submitted",
                    key=key,
                    request=request,
                )
            except Exception:
                log.warning("could not record job %s in the job store", provider_job.id, exc_info=True)
        job.emit("submitted", task_id=provider_job.task_id, seed=provider_job.seed)
        return job


def _job_record(job: ProviderJob) -> dict[str, Any]:
    """What the job store keeps of a provider job (JSON-safe, secret-free); `_job_from` reads it."""
    return {
        "provider": job.provider,
        "model": job.model,
        "task_id": job.task_id,
        "submitted_at": job.submitted_at,
        "seed": job.seed,
        "warnings": list(job.warnings),
        "data": dict(job.data),
    }


def _job_from(record: dict[str, Any]) -> ProviderJob:
    return ProviderJob(
        provider=record["provider"],
        model=record["model"],
        task_id=record["task_id"],
        submitted_at=record["submitted_at"],
        seed=record.get("seed"),
        warnings=tuple(record.get("warnings", ())),
        data=record.get("data", {}),
    )


async def agenerate(
    request: VideoRequest,
    provider: str | Provider | None = None,
    *,
    config: Config | None = None,
    strict: bool = False,
    use_cache: bool = True,
    on_event: EventCallback | None = None,
    deadline: float | None = None,
) -> VideoResult:
    """Generate one video and return the stored, measured result."""
    job = await submit(
        request, provider, config=config, strict=strict, use_cache=use_cache, on_event=on_event, deadline=deadline
    )
    return await job.wait()


def generate(
    request: VideoRequest,
    provider: str | Provider | None = None,
    *,
    config: Config | None = None,
    strict: bool = False,
    use_cache: bool = True,
    on_event: EventCallback | None = None,
    deadline: float | None = None,
) -> VideoResult:
    """The synchronous twin of `agenerate` (not for use inside a running event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("reelgen.generate() cannot run inside an event loop: use `await reelgen.agenerate(...)`")
    return asyncio.run(
        agenerate(
            request, provider, config=config, strict=strict, use_cache=use_cache, on_event=on_event, deadline=deadline
        )
    )


def resume(
    job_id: str,
    *,
    config: Config | None = None,
    provider: Provider | None = None,
    on_event: EventCallback | None = None,
    deadline: float | None = None,
) -> Job:
    """The job `job_id` (`provider:task_id`), from this process or another.

    What the job store knows (the request, the cache key) is picked up, so the result is
    cached and checked as if it had never been interrupted; without it, the job is still
    polled, downloaded and stored.
    """
    if ":" not in job_id:
        raise ValidationError(f"job id {job_id!r} must be 'provider:task_id'", field="job_id")
    name, task_id = job_id.split(":", 1)
    config = config or load_config()
    chosen = provider or get_provider(name, config=config)
    if chosen.name != name:
        raise ValidationError(f"job {job_id!r} belongs to provider {name!r}, not {chosen.name!r}", field="job_id")
    jobs = _jobs_store(config)
    record = jobs.job_get(job_id) if jobs is not None else None
    request = None
    if record is not None and record.request is not None:
        request = structure(record.request, VideoRequest)
    if record is not None:
        provider_job = _job_from(record.job)
    else:
        provider_job = ProviderJob(
            provider=name, model=chosen.capabilities.model, task_id=task_id, submitted_at=time.time()
        )
    # A job that already finished comes back done, with its result; it still has its id.
    finished = record.result if record is not None and record.state == "succeeded" else None
    return Job(
        provider=chosen,
        config=config,
        request=request,
        key=record.key if record is not None else None,
        warnings=[],
        job=provider_job,
        result=finished,
        deadline_at=time.monotonic() + (deadline if deadline is not None else config.deadline),
        on_event=on_event,
        jobs=jobs,
    )
