"""Hand-built requests for the tests that need one particular request, not a search.

`cheap_request` is the least expensive request a provider accepts, at comfortable values
(a second or two, a small frame, a low frame rate); `edge_request` pushes one dimension
to its declared limit with the others kept cheap (and asks for many frames, and the
longest prompt); `slow_request` is meant to take long enough for a cancel to land while
the job is still queued or running.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from reelgen.contract import VideoRequest

from .images import encode_image

if TYPE_CHECKING:
    from reelgen.capabilities import Capabilities

__all__ = [
    "EDGES",
    "cheap_request",
    "edge_request",
    "extreme_images",
    "long_text_requests",
    "modest_request",
    "reference_image",
    "slow_request",
]

EDGES = (
    "shortest",
    "longest",
    "slowest_fps",
    "fastest_fps",
    "smallest_size",
    "largest_size",
    "many_frames",
    "longest_prompt",
)
#: Frames the "many_frames" edge asks for at least (where the limits allow): more than a
#: provider that buffers or truncates at a round number (100, 120, 128) would deliver.
MANY_FRAMES = 240
#: The prompt length tried when a provider declares no limit.
LONG_PROMPT = 5000


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
    candidates: list[tuple[int, int]] = [(comfortable, comfortable), (first, first), medium, (last, last)]
    return [_within_area(caps, pair) for pair in candidates]


def _within_area(caps: Capabilities, pair: tuple[int, int]) -> tuple[int, int]:
    """`pair`, its height cut (in the provider's multiples) to fit `max_frame_pixels`."""
    limit = caps.max_frame_pixels
    width, height = pair
    if limit is None or width * height <= limit:
        return pair
    multiple = max(1, caps.size_multiple_of)
    low = caps.side_range[0] if caps.side_range is not None else multiple
    height = max(math.ceil(low / multiple) * multiple, limit // width // multiple * multiple)
    return width, height


def _only(caps: Capabilities, tier: str) -> Capabilities:
    import attrs

    return attrs.evolve(caps, resolution_tiers=tuple(t for t in caps.resolution_tiers if t.name == tier))


def _image(caps: Capabilities, seed: int) -> bytes | None:
    if not caps.accepts_reference_image or not caps.requires_reference_image:
        return None
    return reference_image(caps, seed)


def reference_image(caps: Capabilities, seed: int = 0) -> bytes:
    """A small image the capabilities accept (for providers where an image is optional too)."""
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
    if edge == "many_frames":
        fields["size"] = "{}*{}".format(*min(sizes, key=lambda p: p[0] * p[1]))
        fields.update(_many_frames(caps, short, long_, slow, fast))
    table: dict[str, dict[str, Any]] = {
        "shortest": {"duration": short},
        "longest": {"duration": long_},
        "slowest_fps": {"fps": slow},
        "fastest_fps": {"fps": fast},
        "smallest_size": {"size": "{}*{}".format(*min(sizes, key=lambda p: p[0] * p[1]))},
        "largest_size": {"size": "{}*{}".format(*max(sizes, key=lambda p: p[0] * p[1]))},
        "many_frames": {},
        "longest_prompt": {"prompt": _longest_prompt(caps)},
    }
    return VideoRequest(**{**fields, **table[edge]})


def _many_frames(caps: Capabilities, short: float, long_: float, slow: float, fast: float) -> dict[str, Any]:
    """The longest duration, at the slowest frame rate that still gives MANY_FRAMES (or the most there are)."""
    if caps.native_fps is not None:
        natives = sorted(f for f in caps.native_fps if caps.fps_range is None or slow <= f <= fast) or [slow]
        fps = next((f for f in natives if f * long_ >= MANY_FRAMES), natives[-1])
    else:
        fps = _clamp(math.ceil(MANY_FRAMES / long_), slow, fast)
    duration = long_
    if caps.durations is None:
        # No longer than needed: the point is the frame count, not the render time.
        duration = _clamp(MANY_FRAMES / fps, short, long_)
        if caps.integer_duration:
            duration = _clamp(float(math.ceil(duration)), short, long_)
    return {"duration": duration, "fps": fps}


def _longest_prompt(caps: Capabilities) -> str:
    return _text_of(caps.prompt_max_chars if caps.prompt_max_chars is not None else LONG_PROMPT)


def long_text_requests(caps: Capabilities) -> list[VideoRequest]:
    """Cheap requests with the longest texts the capabilities allow (or some thousands of characters)."""
    from .strategies import LONG_PROMPTS

    lengths = [caps.prompt_max_chars] if caps.prompt_max_chars is not None else list(LONG_PROMPTS)
    if caps.prompt_max_chars is not None and caps.prompt_overflow == "truncate":
        lengths.append(caps.prompt_max_chars + 1)
    requests = [cheap_request(caps, seed=None, prompt=_text_of(length)) for length in lengths]
    if caps.negative_prompt:
        limit = caps.negative_prompt_max_chars
        requests.append(cheap_request(caps, seed=None, negative_prompt=_text_of(limit or LONG_PROMPT)))
    return requests


def _text_of(length: int) -> str:
    words = "a slow pan across a quiet harbour at dawn, gulls over the water, "
    text = (words * (length // len(words) + 1))[:length]
    return text[:-1] + "." if text[-1].isspace() else text  # exactly `length` characters, no trailing space


def extreme_images(caps: Capabilities, *, max_pixels: int) -> list[bytes]:
    """The thinnest and the widest image the capabilities accept, within `max_pixels`."""
    if not caps.accepts_reference_image:
        return []
    low, high = caps.image_side_range or (16, 4096)
    low = max(1, int(low))
    long_side = int(min(high, max(low, max_pixels // low)))
    if long_side <= low:
        return []
    fmt = next((f for f in ("PNG", "JPEG", "WEBP", "BMP") if f in caps.image_formats), "PNG")
    return [encode_image(low, long_side, fmt, seed=31), encode_image(long_side, low, fmt, seed=32)]


def modest_request(
    caps: Capabilities, *, seed: int | None = 3, max_pixels: int = 320 * 240, **changes: Any
) -> VideoRequest:
    """A cheap request at a modest frame size (about `max_pixels`, where the capabilities allow)."""
    fields = _base(caps, seed)
    candidates = sorted(_sizes(caps), key=lambda p: p[0] * p[1])
    if caps.sizes is None and not caps.resolution_tiers:
        multiple = max(1, caps.size_multiple_of)
        low, high = caps.side_range or (2, 4096)
        first, last = math.ceil(low / multiple) * multiple, (high // multiple) * multiple
        side = max(1, int(math.sqrt(max_pixels / 12)))  # 4:3
        candidates.append(
            (
                int(_clamp(side * 4 // multiple * multiple, first, last)),
                int(_clamp(side * 3 // multiple * multiple, first, last)),
            )
        )
    fitting = [p for p in candidates if p[0] * p[1] <= max_pixels] or candidates[:1]
    fields["size"] = "{}*{}".format(*max(fitting, key=lambda p: p[0] * p[1]))
    return VideoRequest(**{**fields, **changes})


def slow_request(caps: Capabilities, *, seed: int = 5, **changes: Any) -> VideoRequest:
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
    return VideoRequest(**{**fields, **changes})
