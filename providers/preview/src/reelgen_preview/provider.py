"""The preview provider: a seeded pan-and-zoom over the reference image, rendered locally.

It is the reference implementation of a provider on `reelgen.BaseProvider`: a declared
config class, validation through declared capabilities, a job whose id is enough to find
it again from another process, honest status, cancel, and a poll schedule. Jobs render on
daemon threads; the finished file's `file://` URL is the provider's "source URL", which
the core copies into storage.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from reelgen import (
    BaseProvider,
    JobStatus,
    ProviderFailed,
    ProviderJob,
    ProviderOutput,
    TaskExpired,
    VideoRequest,
)
from reelgen.images import read_image
from reelgen.render import RenderStopped, render_video
from reelgen.threads import DaemonPool

from .capabilities import CAPABILITIES
from .card import title_card

__all__ = ["PreviewConfig", "PreviewProvider"]

_MAX_SEED = 2**31 - 1


def _default_work_dir() -> str:
    return str(Path(tempfile.gettempdir()) / "reelgen-preview")


def _at_least_one(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be a whole number >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class PreviewConfig:
    """`[providers.preview]`: where renders go, and how many run at once."""

    work_dir: str = attrs.field(factory=_default_work_dir)
    workers: int = attrs.field(default=2, validator=_at_least_one)


class PreviewProvider(BaseProvider[PreviewConfig]):
    """Free, offline previews. Config: `work_dir` (where renders go), `workers` (threads)."""

    name = "preview"
    capabilities = CAPABILITIES
    config_class = PreviewConfig

    def __init__(self, config: Mapping[str, Any] | PreviewConfig | None = None) -> None:
        super().__init__(config)
        self.work_dir = Path(self.config.work_dir).expanduser()
        # Daemon threads, not a ThreadPoolExecutor: a process that submits and exits must not
        # hang until the render ends (executors join their threads at exit). An abandoned
        # job is not lost: its parameters are in the job store and `resume` renders it.
        self._pool: DaemonPool[None] = DaemonPool(self.config.workers, name="reelgen-preview")
        self._lock = threading.Lock()
        self._renders: dict[str, concurrent.futures.Future[None]] = {}
        self._stops: dict[str, threading.Event] = {}

    # -- jobs ------------------------------------------------------------------------

    def _video_path(self, task_id: str) -> Path:
        return self.work_dir / f"{task_id}.mp4"

    def _cancel_mark(self, task_id: str) -> Path:
        # On disk, so a cancel is honoured by whichever process resumes the job.
        return self.work_dir / f"{task_id}.cancelled"

    async def submit(self, request: VideoRequest) -> ProviderJob:
        seed = request.seed if request.seed is not None else random.randint(0, _MAX_SEED)
        options = request.options_for(self.name)
        image_path = None
        if request.reference_image is not None:
            image = read_image(request.reference_image)
            image_dir = self.work_dir / "images"
            image_dir.mkdir(parents=True, exist_ok=True)
            image_path = image_dir / f"{image.sha256}.img"
            if not image_path.exists():
                _write_atomic(image_path, image.content)
        width, height = request.width, request.height
        params = {
            "width": width,
            "height": height,
            "fps": request.fps,
            "duration": request.duration,
            "seed": seed,
            "motion_strength": 0.5 if request.motion_strength is None else request.motion_strength,
            "audio": bool(options.get("audio", False)),
            "image": str(image_path) if image_path else None,
            "prompt": request.prompt,
            "render_delay": float(options.get("render_delay", 0.0)),
        }
        # Every submission is its own job, even for an identical request: cancelling one
        # must never cancel (or hand back) another. The id is all another process needs,
        # with the parameters the job store keeps, to finish the render.
        task_id = uuid.uuid4().hex
        job = ProviderJob(
            provider=self.name,
            model=CAPABILITIES.model,
            task_id=task_id,
            submitted_at=time.time(),
            seed=seed,
            data={"params": params},
        )
        self._start(job)
        return job

    def _start(self, job: ProviderJob) -> None:
        with self._lock:
            if job.task_id in self._renders:
                return
            stop = threading.Event()
            self._stops[job.task_id] = stop
            # Queued until one of `workers` threads is free; a cancel before that skips it.
            self._renders[job.task_id] = self._pool.submit(lambda: self._render(job, stop))

    def _render(self, job: ProviderJob, stop: threading.Event) -> None:
        params = job.data["params"]
        final = self._video_path(job.task_id)
        if final.exists():
            return
        if stop.wait(params["render_delay"]) or self._cancel_mark(job.task_id).exists():
            raise RenderStopped("cancelled before rendering")
        if params["image"]:
            image: Any = Path(params["image"]).read_bytes()
        else:
            image = title_card(params["prompt"], params["width"], params["height"], params["seed"])
        self.work_dir.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{job.task_id}.", suffix=".mp4", dir=self.work_dir)
        os.close(fd)
        try:
            render_video(
                image,
                temp,
                width=params["width"],
                height=params["height"],
                fps=params["fps"],
                duration=params["duration"],
                seed=params["seed"],
                motion_strength=params["motion_strength"],
                audio=params["audio"],
                # A cancel from another process (the mark) stops a render already under way too.
                should_stop=lambda: stop.is_set() or self._cancel_mark(job.task_id).exists(),
            )
            os.replace(temp, final)
        finally:
            Path(temp).unlink(missing_ok=True)

    async def poll(self, job: ProviderJob) -> JobStatus:
        path = self._video_path(job.task_id)
        with self._lock:
            future = self._renders.get(job.task_id)
        if self._cancel_mark(job.task_id).exists() and not path.exists():
            return JobStatus(state="cancelled", raw_status="CANCELLED")
        if future is None:
            if path.exists():
                return self._succeeded(job, path)
            if "params" not in job.data:
                raise TaskExpired(
                    "preview job unknown here and no render parameters to redo it",
                    provider=self.name,
                    task_id=job.task_id,
                )
            # Resumed from another process: the parameters are in the job, so render again.
            self._start(job)
            return JobStatus(state="queued", raw_status="QUEUED")
        if future.cancelled():
            return JobStatus(state="cancelled", raw_status="CANCELLED")
        if not future.done():
            return JobStatus(
                state="running" if future.running() else "queued",
                raw_status="RUNNING" if future.running() else "QUEUED",
            )
        error = future.exception()
        if isinstance(error, RenderStopped):
            return JobStatus(state="cancelled", raw_status="CANCELLED")
        if error is not None:
            raise ProviderFailed(
                f"preview render failed: {error}", provider=self.name, code=type(error).__name__, task_id=job.task_id
            )
        return self._succeeded(job, path)

    def _succeeded(self, job: ProviderJob, path: Path) -> JobStatus:
        output = ProviderOutput(
            source_url=path.resolve().as_uri(),
            usage={"seconds": job.data.get("params", {}).get("duration"), "cost": 0},
            seed=job.seed,
        )
        return JobStatus(state="succeeded", raw_status="SUCCEEDED", progress=1.0, output=output)

    async def cancel(self, job: ProviderJob) -> bool:
        with self._lock:
            future = self._renders.get(job.task_id)
            stop = self._stops.get(job.task_id)
        if self._video_path(job.task_id).exists() or (future is not None and future.done()):
            return False
        # Marked first: a render started by another process (resume) sees it and stops.
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._cancel_mark(job.task_id).touch()
        if stop is not None:
            stop.set()
        if future is not None:
            future.cancel()
        return True

    def poll_delay(self, job: ProviderJob, attempt: int, elapsed: float) -> float:
        # Renders take a fraction of a second to a few seconds: look often, then less.
        return min(0.5, 0.02 * 2.0 ** min(attempt, 10))

    async def aclose(self) -> None:
        with self._lock:
            for stop in self._stops.values():
                stop.set()


def _write_atomic(path: Path, content: bytes) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(temp, path)
