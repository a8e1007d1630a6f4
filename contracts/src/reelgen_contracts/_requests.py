"""Hand-built requests for the tests that need one particular request, not a search.

`cheap_request` is the least expensive request a provider accepts, at comfortable values
(a second or two, a small frame, a low frame rate); `edge_request` pushes one dimension
to its declared limit with the others kept cheap; `slow_request` is meant to take long
enough for a cancel to land while the job is still queued or running.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from reelgen.contract import VideoRequest

from .images import encode_image

if TYPE_CHECKING:
    from reelgen.capabilities import Capabilities

__all__ = ["EDGES", "cheap_request", "edge_request", "slow_request"]

EDGES = ("shortest", "longest", "slowest_fps", "fastest_fps", "smallest_size", "largest_size")


def _durations(caps: Capabilities) -> tuple[float, float]:
    if caps.durations is not None:
        return min(caps.durations), max(caps.durations)
    if caps.duration_range is not None:
        low, high = caps.duration_range
        if caps.integer_duration:
            return float(math.ceil(low)), float(math.floor(high))
        return low, high
    return 0.5, 60.0


def _fps(caps: Capabilities) -> tuple[float, float]:
    if caps.native_fps is not None:
        natives = [f for f in caps.native_fps if caps.fps_range is None or caps.fps_range[0] <= f <= caps.fps_range[1]]
        natives = natives or list(caps.native_fps)
        return min(natives), max(natives)
    if caps.fps_range is not None:
        return caps.fps_range
    return 1.0, 120.0


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _sizes(caps: Capabilities) -> list[tuple[int, int]]:
    """Candidate sizes, cheapest first."""
    from .strategies import _tier_sizes

    if caps.sizes is not None and not caps.resolution_tiers:
        pairs = [tuple(int(x) for x in s.split("*")) for s in caps.sizes]
        return sorted(pairs, key=lambda p: p[0] * p[1])  # type: ignore[arg-type]
    if caps.resolution_tiers:
        smallest = min(caps.resolution_tiers, key=lambda t: t.pixels)
        largest = max(caps.resolution_tiers, key=lambda t: t.pixels)
        return [_tier_sizes(_only(caps, smallest.name))[0], _tier_sizes(_only(caps, largest.name))[0]]
    multiple = max(1, caps.size_multiple_of)
    low, high = caps.side_range or (2, 4096)
    first = math.ceil(low / multiple) * multiple
    last = (high // multiple) * multiple
    comfortable = int(_clamp(math.ceil(64 / multiple) * multiple, first, last))
    medium = (
        int(_clamp(640 // multiple * multiple, first, last)),
        int(_clamp(480 // multiple * multiple, first, last)),
    )
    return [(comfortable, comfortable), (first, first), medium, (last, last)]


def _only(caps: Capabilities, tier: str) -> Capabilities:
    import attrs

    return attrs.evolve(caps, resolution_tiers=tuple(t for t in caps.resolution_tiers if t.name == tier))


def _image(caps: Capabilities, seed: int) -> bytes | None:
    if not caps.accepts_reference_image or not caps.requires_reference_image:
        return None
    low, high = caps.image_side_range or (16, 4096)
    side = int(_clamp(96, low, high))
    fmt = next((f for f in ("PNG", "JPEG", "WEBP", "BMP") if f in caps.image_formats), "PNG")
    return encode_image(int(_clamp(side * 4 // 3, low, high)), side, fmt, seed=seed)


def _base(caps: Capabilities, seed: int | None) -> dict[str, Any]:
    short, long_ = _durations(caps)
    slow, fast = _fps(caps)
    fields: dict[str, Any] = {
        "prompt": "a slow pan across the scene",
        "duration": _clamp(1.0, short, long_) if caps.durations is None else short,
        "fps": slow if caps.native_fps is not None else _clamp(10.0, slow, fast),
        "size": "{}*{}".format(*_sizes(caps)[0]),
        "reference_image": _image(caps, seed or 0),
    }
    if caps.seed and seed is not None:
        low, high = caps.seed_range
        fields["seed"] = int(_clamp(seed, low, high))
    return fields


def cheap_request(caps: Capabilities, *, seed: int | None = 1, **changes: Any) -> VideoRequest:
    """The least expensive request `caps` accept, at comfortable values."""
    return VideoRequest(**{**_base(caps, seed), **changes})


def edge_request(caps: Capabilities, edge: str) -> VideoRequest:
    """A cheap request with one dimension at its declared limit (see `EDGES`)."""
    short, long_ = _durations(caps)
    slow, fast = _fps(caps)
    sizes = _sizes(caps)
    fields = _base(caps, 3)
    if edge in ("longest", "largest_size", "fastest_fps"):
        # The other dimensions at their cheapest, so one limit is tested at a time.
        fields["duration"] = short
        fields["fps"] = slow
        fields["size"] = "{}*{}".format(*min(sizes, key=lambda p: p[0] * p[1]))
    table: dict[str, dict[str, Any]] = {
        "shortest": {"duration": short},
        "longest": {"duration": long_},
        "slowest_fps": {"fps": slow},
        "fastest_fps": {"fps": fast},
        "smallest_size": {"size": "{}*{}".format(*min(sizes, key=lambda p: p[0] * p[1]))},
        "largest_size": {"size": "{}*{}".format(*max(sizes, key=lambda p: p[0] * p[1]))},
    }
    return VideoRequest(**{**fields, **table[edge]})


def slow_request(caps: Capabilities, *, seed: int = 5) -> VideoRequest:
    """A request that should keep the provider busy for a while (for cancel tests)."""
    short, long_ = _durations(caps)
    slow, fast = _fps(caps)
    sizes = sorted(_sizes(caps), key=lambda p: p[0] * p[1])
    affordable = [p for p in sizes if p[0] * p[1] <= 1280 * 720] or sizes[:1]
    fields = _base(caps, seed)
    fields["duration"] = _clamp(4.0, short, long_) if caps.durations is None else long_
    if caps.durations is None and caps.integer_duration:
        fields["duration"] = float(math.floor(fields["duration"]))
    fields["fps"] = slow if caps.native_fps is not None else _clamp(30.0, slow, fast)
    fields["size"] = "{}*{}".format(*affordable[-1])
    return VideoRequest(**fields)
