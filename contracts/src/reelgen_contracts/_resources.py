"""The memory and time one generation takes, measured from outside the provider.

Memory is the growth of the process's peak resident set over the generation (the core,
the provider, its threads; the peak is reset first, on Linux through
`/proc/self/clear_refs`), so a provider that holds every frame of a long video, or
decodes a thin image at a huge size, shows up whatever it allocates with. A watchdog
samples the resident set meanwhile and stops a generation that passes the bound (a
runaway would otherwise take the machine down before any check could run).

The bounds are generous on purpose: they catch runaway growth, not slowness, and must
hold on a loaded machine. Both scale with what was asked for: the frame size (and the
reference image's), the number of frames.
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from reelgen.contract import VideoRequest

__all__ = ["MEMORY_SLACK", "ResourceWatch", "memory_bound", "time_bound"]

#: Memory any generation may add, whatever its size: codecs, threads, first imports.
MEMORY_SLACK = 256 * 1024 * 1024
#: Raw RGB frames (of the requested size) a provider may hold at once beyond the slack.
FRAMES_HELD = 32
#: Copies of the reference image's file (its bytes, read, base64'd, hashed) a run may hold.
IMAGE_FILE_COPIES = 6
#: Seconds any generation may take, and seconds per million frame pixels (a 720p second
#: at 30 fps is 28 million): about a hundred times what a local render needs.
TIME_SLACK = 60.0
SECONDS_PER_MEGAPIXEL_FRAME = 1.0

_PROC = Path("/proc/self")


def _frame_bytes(request: VideoRequest) -> int:
    return request.width * request.height * 3


def _image_pixels(request: VideoRequest) -> int:
    image = request.reference_image
    if image is None:
        return 0
    try:
        from reelgen.images import read_image

        info = read_image(image)
        return int(info.width) * int(info.height)
    except Exception:  # noqa: BLE001 - a remote or unreadable image: no allowance for it
        return 0


def _image_bytes(request: VideoRequest) -> int:
    image = request.reference_image
    if isinstance(image, (bytes, bytearray)):
        return len(image)
    if image is None:
        return 0
    text = str(image)
    if text.startswith("data:"):
        return len(text)
    if text.startswith("file://"):
        from urllib.parse import unquote, urlparse

        text = unquote(urlparse(text).path)
    try:
        return Path(text).stat().st_size
    except (OSError, ValueError):
        return 0  # a remote URL: its size is not known here


def memory_bound(request: VideoRequest) -> int:
    """Bytes of peak resident memory one generation of `request` may add."""
    # The reference image's file, read and copied a few times; decoded (RGBA), a few working copies.
    image = IMAGE_FILE_COPIES * _image_bytes(request) + 8 * 4 * _image_pixels(request)
    return MEMORY_SLACK + FRAMES_HELD * _frame_bytes(request) + image


def time_bound(request: VideoRequest) -> float:
    """Seconds one generation of `request` may take."""
    frames = max(1.0, request.duration * request.fps)
    return TIME_SLACK + SECONDS_PER_MEGAPIXEL_FRAME * frames * request.width * request.height / 1e6


def _rss() -> int | None:
    try:
        pages = int((_PROC / "statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


def _reset_peak() -> bool:
    try:
        (_PROC / "clear_refs").write_text("5")  # Linux >= 4.0: reset VmHWM to the current RSS
    except OSError:
        return False
    return True


def _peak() -> int | None:
    try:
        for line in (_PROC / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _max_rss() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


@attrs.define
class ResourceWatch:
    """Measures one generation: `with ResourceWatch(bound, on_breach) as watch: ...`.

    `growth` is the peak resident memory added (None where the platform cannot say),
    `elapsed` the wall time. `on_breach` is called once, from the watchdog thread, if the
    resident set grows past `bound` while the block runs.
    """

    bound: int
    on_breach: Callable[[int], None] | None = None
    interval: float = 0.05
    growth: int | None = None
    elapsed: float = 0.0
    breached: int | None = None
    _start_rss: int | None = None
    _exact: bool = False
    _start_max: int = 0
    _started: float = 0.0
    _stop: threading.Event = attrs.Factory(threading.Event)
    _thread: threading.Thread | None = None
    _sampled: int = 0

    def __enter__(self) -> ResourceWatch:
        self._exact = _reset_peak()
        self._start_rss = _rss()
        self._start_max = _max_rss()
        self._sampled = self._start_rss or 0
        self._started = time.monotonic()
        if self._start_rss is not None:
            self._thread = threading.Thread(target=self._watch, name="reelgen-contracts-memory", daemon=True)
            self._thread.start()
        return self

    def _watch(self) -> None:
        assert self._start_rss is not None
        while not self._stop.wait(self.interval):
            now = _rss()
            if now is None:
                return
            self._sampled = max(self._sampled, now)
            if now - self._start_rss > self.bound and self.breached is None:
                self.breached = now - self._start_rss
                if self.on_breach is not None:
                    self.on_breach(self.breached)

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.monotonic() - self._started
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._start_rss is not None:
            peak = _peak() if self._exact else None
            self.growth = max(0, max(peak or 0, self._sampled) - self._start_rss)
        else:
            # Without /proc: the process's lifetime peak, which only shows growth past it.
            self.growth = max(0, _max_rss() - self._start_max) or None
