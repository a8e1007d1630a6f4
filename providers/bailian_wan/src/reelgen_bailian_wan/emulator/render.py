"""The result video: its size per tier and aspect ratio, and a shared render cache.

Output size follows the reference's FAQ: the tier fixes the pixel total (720P =
1280x720, 1080P = 1920x1080), the input image fixes the aspect ratio, and both
sides are rounded down to multiples of 16 (750x1000 at 720P gives 816x1104).

Renders run on a small pool of daemon threads (`reelgen.threads.DaemonPool`), so the
HTTP server stays responsive and an interpreter exit never waits for a half-done render. Finished files are
cached by (image sha256, width, height, duration, seed, audio, mode) in one
directory shared by every emulator of the process: repeated identical tasks, and
function-scoped test fixtures, cost nothing after the first render.
"""

from __future__ import annotations

import atexit
import hashlib
import math
import os
import shutil
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

import attrs

from reelgen.threads import DaemonPool

__all__ = ["FPS", "TIER_PIXELS", "RenderCache", "RenderKey", "output_size", "shared_cache"]

FPS = 30
TIER_PIXELS = {"720P": 1280 * 720, "1080P": 1920 * 1080}
_RENDERER_VERSION = "2"  # bump when the frames a key renders change


def output_size(width: int, height: int, resolution: str) -> tuple[int, int]:
    """(W, H) of the result for an input image of `width` x `height` at `resolution`."""
    pixels = TIER_PIXELS[resolution]
    aspect = width / height
    out_w = max(16, math.floor(math.sqrt(pixels * aspect) / 16) * 16)
    out_h = max(16, math.floor(math.sqrt(pixels / aspect) / 16) * 16)
    return out_w, out_h


@attrs.frozen
class RenderKey:
    sha256: str
    width: int
    height: int
    duration: int
    seed: int
    audio: bool
    mode: str

    @property
    def filename(self) -> str:
        text = "|".join(map(str, (_RENDERER_VERSION, *attrs.astuple(self))))
        return hashlib.sha256(text.encode()).hexdigest()[:40] + ".mp4"


@attrs.define(eq=False)
class _Job:
    future: Future[Path]
    waiters: int = 1


class RenderCache:
    def __init__(self, directory: Path, workers: int = 2) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        # Daemon threads (reelgen.threads), so an interpreter exit never waits for a render.
        self._pool: DaemonPool[Path] = DaemonPool(workers, name="dashscope-emulator-render")
        self._lock = threading.Lock()
        self._inflight: dict[RenderKey, _Job] = {}
        self.renders = 0  # renders actually performed (not served from the cache)

    def path(self, key: RenderKey) -> Path:
        return self.directory / key.filename

    def submit(self, key: RenderKey, image: bytes) -> Future[Path]:
        """A future for the rendered file; done at once when it is already cached.

        Identical renders in flight are shared; each caller should `release` its
        future if it stops caring, so renders nobody waits for never start.
        """
        path = self.path(key)
        with self._lock:
            job = self._inflight.get(key)
            if job is not None:
                job.waiters += 1
                return job.future
            if path.exists():
                done: Future[Path] = Future()
                done.set_result(path)
                return done
            future = self._pool.submit(lambda: self._render(key, image, path))
            self._inflight[key] = _Job(future)
        future.add_done_callback(lambda _: self._forget(key, future))
        return future

    def release(self, key: RenderKey, future: Future[Path]) -> None:
        """One waiter fewer; a render with no waiters left is dropped if not started."""
        with self._lock:
            job = self._inflight.get(key)
            if job is None or job.future is not future:
                return
            job.waiters -= 1
            if job.waiters > 0 or future.running():
                return
            del self._inflight[key]
        # Outside the lock: cancelling runs the future's callbacks, which take it.
        future.cancel()

    def _forget(self, key: RenderKey, future: Future[Path]) -> None:
        with self._lock:
            job = self._inflight.get(key)
            if job is not None and job.future is future:
                del self._inflight[key]

    def _render(self, key: RenderKey, image: bytes, path: Path) -> Path:
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        try:
            if key.mode == "still":
                render_still(image, tmp, width=key.width, height=key.height, duration=key.duration, audio=key.audio)
            else:
                from reelgen.render import render_video

                render_video(
                    image,
                    tmp,
                    width=key.width,
                    height=key.height,
                    fps=FPS,
                    duration=key.duration,
                    seed=key.seed,
                    audio=key.audio,
                )
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        with self._lock:
            self.renders += 1
        return path


def render_still(image: bytes, out: Path, *, width: int, height: int, duration: int, audio: bool) -> None:
    """The cheap render: the image, cover-cropped, held still; same size, fps, length, tracks.

    `reelgen.render.render_video` with a still camera computes the picture once.
    """
    from reelgen.render import render_video

    render_video(image, out, width=width, height=height, fps=FPS, duration=duration, motion_strength=0.0, audio=audio)


_caches: dict[str, RenderCache] = {}
_caches_lock = threading.Lock()
_process_dir: Path | None = None


def _default_dir() -> Path:
    global _process_dir
    configured = os.environ.get("REELGEN_EMULATOR_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    if _process_dir is None:
        _process_dir = Path(tempfile.mkdtemp(prefix="reelgen-dashscope-emulator-"))
        atexit.register(shutil.rmtree, _process_dir, ignore_errors=True)
    return _process_dir


def shared_cache(cache_dir: str | None = None) -> RenderCache:
    """The process-wide cache for `cache_dir` (default: `$REELGEN_EMULATOR_CACHE_DIR`,
    else a temporary directory removed at exit)."""
    with _caches_lock:
        directory = Path(cache_dir).expanduser() if cache_dir else _default_dir()
        name = str(directory.resolve())
        cache = _caches.get(name)
        if cache is None:
            workers = max(2, min(4, os.cpu_count() or 2))
            cache = _caches[name] = RenderCache(directory, workers)
        return cache
