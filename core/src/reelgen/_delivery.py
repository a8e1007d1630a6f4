"""Delivery: from the provider's finished video to a stored, measured, remembered result.

The job is paid by now, so nothing here gives up early: downloads are retried with
backoff over a long window (bounded by the deadline and the provider URL's expiry), a
corrupt or truncated copy is fetched again, and a failure is a `DeliveryFailed` that
names the job and the exact `reelgen jobs resume ID` (the caller keeps the job in the
journal as `delivery_failed`). Handed `emit` and the deadline by `reelgen.jobs.Job`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs

from . import _hooks
from ._measure import measurement_warnings
from ._retry import backoff_delay
from .config import Config
from .contract import VideoRequest, VideoResult
from .download import VideoSource, download_video
from .errors import DeliveryFailed, IntegrityError, ReelgenError, StorageError, TooLarge, TransientError
from .provider import Provider, ProviderJob, ProviderOutput

__all__ = ["Delivery", "deliver", "resume_hint"]

log = logging.getLogger("reelgen.delivery")

_PROGRESS_STEP = 0.02
#: A safety net on top of the time window: never more downloads than this per delivery.
_MAX_DOWNLOADS = 12

Emit = Callable[..., None]


def resume_hint(ref: str | None) -> str:
    return f"reelgen jobs resume {ref}" if ref else "reelgen jobs list"


def _expiry(expires_at: str | None) -> float | None:
    """Seconds until the provider's URL expires (None if unknown)."""
    if not expires_at:
        return None
    text = expires_at.strip().replace(" ", "T", 1)
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp() - time.time()


@attrs.frozen(kw_only=True)
class Delivery:
    """What delivering one job needs."""

    provider: Provider
    config: Config
    job: ProviderJob
    #: The caller's request (None for a job known only by id), and its cache key.
    request: VideoRequest | None
    key: str | None
    warnings: list[str]
    #: Cache the result (False for `use_cache=False`: a new take is never cached).
    use_cache: bool
    emit: Emit
    deadline_at: float
    #: Sleeps, waking early (raising) if the job is cancelled.
    sleep: Callable[[float], Awaitable[None]]


async def deliver(d: Delivery, output: ProviderOutput) -> VideoResult:
    """Download, measure, store and cache; raise `DeliveryFailed` for anything that failed."""
    spool = Path(tempfile.mkdtemp(prefix="reelgen-"))
    try:
        try:
            source, probe = await _download_verified(d, output, spool)
            seed = output.seed if output.seed is not None else d.job.seed
            warnings = d.warnings + list(d.job.warnings) + list(output.warnings)
            if d.request is not None:
                warnings += measurement_warnings(d.request, probe, seed=seed, known=warnings)
            draft = VideoResult(
                video_url=output.source_url,
                duration=probe.duration,
                fps=probe.fps,
                seed=seed,
                size=probe.size,
                provider=d.provider.name,
                model=d.job.model,
                task_id=d.job.task_id,
                source_url=output.source_url,
                expires_at=output.expires_at,
                sha256=source.sha256,
                bytes=source.bytes,
                warnings=list(dict.fromkeys(warnings)),
                usage=dict(output.usage),
            )
            result = await _store(d, draft, source)
        except DeliveryFailed:
            raise
        except ReelgenError as exc:
            raise _failed(d, output, exc) from exc
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    await _remember(d, result)
    return result


def _failed(d: Delivery, output: ProviderOutput, exc: BaseException) -> DeliveryFailed:
    from .download import URL_GONE

    ref = d.job.id
    expiry = _expiry(output.expires_at)
    if getattr(exc, "status_code", None) in URL_GONE or (expiry is not None and expiry <= 0):
        stated = f" (its stated expiry: {output.expires_at})" if output.expires_at else ""
        where = (
            f"The provider's URL no longer answers{stated}, so the video cannot be fetched from it again; "
            f"`{resume_hint(ref)}` asks the provider for the job afresh (a new URL if it still has one)"
        )
    else:
        valid = f"until {output.expires_at}" if output.expires_at else "while the provider keeps it"
        where = f"The provider's URL stays valid {valid}: finish it with `{resume_hint(ref)}`"
    return DeliveryFailed(
        f"job {ref} finished at {d.provider.name} (and is billed) but the video could not be delivered: {exc}. {where}",
        job_id=ref,
    )


def _remaining(d: Delivery) -> float:
    return d.deadline_at - time.monotonic()


async def _download_verified(d: Delivery, output: ProviderOutput, spool: Path) -> tuple[VideoSource, Any]:
    from .probe import probe_video

    loop = asyncio.get_running_loop()
    last_fraction = -1.0

    def progress(received: int, total: int | None) -> None:
        nonlocal last_fraction
        fraction = received / total if total else None
        if fraction is None or fraction - last_fraction >= _PROGRESS_STEP or fraction >= 1.0:
            last_fraction = fraction if fraction is not None else last_fraction
            loop.call_soon_threadsafe(
                lambda: d.emit("progress", phase="downloading", bytes=received, total=total, fraction=fraction)
            )

    key = d.key or d.job.task_id
    attempt = 0
    while True:
        attempt += 1
        try:
            source = await asyncio.wait_for(
                asyncio.to_thread(
                    download_video,
                    output.source_url,
                    directory=spool,
                    key=key,
                    max_bytes=d.config.storage.max_bytes,
                    headers=output.download_headers,
                    on_progress=progress,
                ),
                timeout=max(0.001, _remaining(d)),
            )
            d.emit("downloaded", bytes=source.bytes, sha256=source.sha256)
            probe = await asyncio.to_thread(probe_video, source.path, decode=True)
            return source, probe
        except asyncio.TimeoutError:
            raise StorageError("the deadline passed during the download") from None
        except TooLarge:
            raise
        except (TransientError, IntegrityError) as exc:
            # Free and idempotent until the URL expires; a corrupt copy is worth another try.
            delay = backoff_delay(attempt, base=0.5, cap=30.0)
            window = _remaining(d)
            expiry = _expiry(output.expires_at)
            if expiry is not None:
                window = min(window, expiry)
            if attempt >= _MAX_DOWNLOADS or delay >= window:
                raise StorageError(f"could not download a valid video after {attempt} attempts: {exc}") from exc
            log.info("download attempt %d of %s failed: %s", attempt, d.job.id, exc)
            d.emit("retrying", step="download", attempt=attempt, delay=delay, reason=str(exc))
            await d.sleep(delay)


async def _store(d: Delivery, draft: VideoResult, source: VideoSource) -> VideoResult:
    request = d.request or VideoRequest(prompt="(resumed job)")
    try:
        stored = await asyncio.wait_for(
            _hooks.call_first(
                "reelgen_store_video", request=request, result=draft, source=source, config=d.config, job_id=d.job.id
            ),
            timeout=max(0.001, _remaining(d)),
        )
    except asyncio.TimeoutError:
        raise StorageError("the deadline passed while storing the video") from None
    except StorageError:
        raise
    except ReelgenError:
        raise
    except Exception as exc:
        raise StorageError(f"storing the video failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(stored, VideoResult):
        raise StorageError("no storage plugin stored the video (reelgen_store_video returned nothing)")
    if stored.video_url == draft.source_url:
        raise StorageError("the storage plugin returned the provider's expiring URL instead of a durable one")
    if stored.sha256 != source.sha256 or stored.bytes != source.bytes:
        raise StorageError("the stored video does not match the downloaded one (sha256 or size differ)")
    d.emit("stored", video_url=stored.video_url, bytes=stored.bytes)
    return stored


async def _remember(d: Delivery, result: VideoResult) -> None:
    """The cache (only for a shared take with a known key); failures are logged, never lose the result."""
    if not (d.use_cache and d.key is not None and d.request is not None and d.config.cache.enabled):
        return
    try:
        await _hooks.call_all("reelgen_cache_put", key=d.key, request=d.request, result=result, config=d.config)
    except Exception:
        log.exception("a cache plugin failed to store %s", d.key)
