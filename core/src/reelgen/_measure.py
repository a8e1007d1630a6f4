"""Compare what was asked for with what was measured in the stored file."""

from __future__ import annotations

from .contract import VideoRequest, parse_size
from .probe import VideoProbe

__all__ = ["measurement_warnings"]


def _mentions(warnings: list[str], field: str) -> bool:
    return any(w.startswith(f"{field}:") for w in warnings)


def measurement_warnings(request: VideoRequest, probe: VideoProbe, *, seed: int | None, known: list[str]) -> list[str]:
    """Warnings for every difference between `request` and `probe`.

    A field already explained by an earlier warning (from validation) is not repeated;
    the result's measured fields give the exact values.
    """
    found: list[str] = []
    frame = 1.0 / probe.fps if probe.fps else 0.0
    if abs(probe.duration - request.duration) > frame + 1e-6 and not _mentions(known, "duration"):
        found.append(f"duration: asked for {request.duration:g} s, the video is {probe.duration:g} s")
    if abs(probe.fps - request.fps) > 0.01 and not _mentions(known, "fps"):
        found.append(f"fps: asked for {request.fps:g} fps, the video is {probe.fps:g} fps")
    if (probe.width, probe.height) != parse_size(request.size) and not _mentions(known, "size"):
        found.append(f"size: asked for {request.size}, the video is {probe.size}")
    if request.seed is not None and seed is not None and seed != request.seed and not _mentions(known, "seed"):
        found.append(f"seed: asked for {request.seed}, the provider used {seed}")
    return found
