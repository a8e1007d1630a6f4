"""What a provider can honour, declared up front so requests are checked before any paid call."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._converters import plain_dict
from .pricing import Pricing

__all__ = ["Capabilities", "OptionSpec", "ResolutionTier"]

CancelSupport = Literal["none", "pending", "any"]


@attrs.frozen(kw_only=True)
class ResolutionTier:
    """A named output tier: the provider picks dimensions near `pixels` (e.g. 720P ~ 921600)."""

    name: str
    pixels: int
    multiple_of: int = 1


@attrs.frozen(kw_only=True)
class OptionSpec:
    """One provider option: its JSON type, allowed values and default, for validation and docs."""

    type: Literal["bool", "int", "float", "str"]
    doc: str
    default: Any = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    #: Other options this one needs when it is given: `"name=value"` (that value, compared
    #: case-insensitively as text) or `"name"` (set to a true value). Defaults count.
    requires: tuple[str, ...] = ()


def _optional_positive(integer: bool) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or not (math.isfinite(value) and value > 0):  # type: ignore[arg-type, operator]
            kind = "a whole number" if integer else "a finite number"
            raise ValueError(f"{attribute.name} must be {kind} greater than 0 or None, got {value!r}")

    return check


def _inside(value: float, allowed: tuple[float, ...] | None, bounds: tuple[float, float] | None) -> bool:
    if allowed is not None:
        return any(math.isclose(value, choice, abs_tol=1e-9) for choice in allowed)
    return bounds is None or bounds[0] <= value <= bounds[1]


def _default_problems(caps: Capabilities) -> list[str]:
    """Why the declared defaults are not values this provider accepts (empty: they are)."""
    problems = []
    duration = caps.default_duration
    if duration is not None:
        if not _inside(duration, caps.durations, caps.duration_range) or duration <= 0:
            problems.append(f"default_duration {duration!r} is not an allowed duration")
        elif caps.integer_duration and duration != int(duration):
            problems.append(f"default_duration {duration!r} must be whole seconds (integer_duration)")
    fps = caps.default_fps
    if fps is not None and (fps <= 0 or not _inside(fps, caps.native_fps, caps.fps_range)):
        problems.append(f"default_fps {fps!r} is not a frame rate this provider outputs")
    size = caps.default_size
    if size is not None:
        width, sep, height = size.partition("*")
        if not (sep and width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
            problems.append(f"default_size {size!r} is not 'W*H'")
        elif caps.sizes is not None and size not in caps.sizes:
            problems.append(f"default_size {size!r} is not one of sizes")
        else:
            sides = (int(width), int(height))
            if any(side % caps.size_multiple_of for side in sides):
                problems.append(f"default_size {size!r}: sides must be multiples of {caps.size_multiple_of}")
            if caps.side_range is not None and not all(caps.side_range[0] <= s <= caps.side_range[1] for s in sides):
                problems.append(f"default_size {size!r} is outside side_range {caps.side_range}")
    return problems


def _area_problems(caps: Capabilities) -> list[str]:
    """Why the declared area limits contradict the other fields (empty: they agree)."""
    problems = []
    frame = caps.max_frame_pixels
    if frame is not None:
        multiple = max(1, caps.size_multiple_of)
        side = math.ceil((caps.side_range[0] if caps.side_range is not None else 1) / multiple) * multiple
        if side * side > frame:
            problems.append(f"max_frame_pixels {frame} is below the smallest size side_range allows")
        for listed in caps.sizes or ():
            width, _, height = listed.replace("x", "*").partition("*")
            if width.isdigit() and height.isdigit() and int(width) * int(height) > frame:
                problems.append(f"sizes lists {listed}, over max_frame_pixels {frame}")
        size = caps.default_size
        if size is not None:
            width, _, height = size.partition("*")
            if width.isdigit() and height.isdigit() and int(width) * int(height) > frame:
                problems.append(f"default_size {size!r} is over max_frame_pixels {frame}")
    picture = caps.image_max_pixels
    if picture is not None and caps.image_side_range is not None and caps.image_side_range[0] ** 2 > picture:
        problems.append(f"image_max_pixels {picture} is below the smallest picture image_side_range allows")
    return problems


@attrs.frozen(kw_only=True)
class Capabilities:
    """Everything the core needs to check a request against one provider and model.

    Ranges are inclusive. `None` means "no limit" or "anything", never "unknown":
    a provider that does not know a limit should leave it out of its docs, not here.
    """

    model: str
    #: Discrete allowed durations in seconds, or None to use `duration_range`.
    durations: tuple[float, ...] | None = None
    #: Inclusive (min, max) duration in seconds when `durations` is None.
    duration_range: tuple[float, float] | None = None
    #: True when the provider only takes whole seconds.
    integer_duration: bool = False
    #: The provider always outputs these frame rates (None: it honours the requested fps).
    native_fps: tuple[float, ...] | None = None
    #: Inclusive (min, max) fps when the provider honours the requested fps.
    fps_range: tuple[float, float] | None = None
    #: Exact output sizes the provider offers ("W*H"), or None.
    sizes: tuple[str, ...] | None = None
    #: Resolution tiers when the provider takes a tier instead of a size.
    resolution_tiers: tuple[ResolutionTier, ...] = ()
    #: The output's aspect ratio follows the reference image, not the requested size.
    aspect_follows_image: bool = False
    #: Output sides must be multiples of this (H.264 wants 2).
    size_multiple_of: int = 1
    #: Inclusive (min, max) for each output side in pixels, when the size is free.
    side_range: tuple[int, int] | None = None
    #: The largest output frame area, width * height in pixels (None: only the sides are bounded).
    #: What the provider (or its renderer's memory) can take: 3840 * 2160 is 8294400.
    max_frame_pixels: int | None = attrs.field(default=None, validator=_optional_positive(integer=True))
    requires_reference_image: bool = False
    accepts_reference_image: bool = True
    #: Pillow format names accepted for the reference image.
    image_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP")
    image_max_bytes: int | None = None
    #: Inclusive (min, max) for each side of the reference image in pixels.
    image_side_range: tuple[int, int] | None = None
    #: The largest reference picture area, width * height in pixels (a picture is decoded whole):
    #: checked from the file's header, before the picture is decoded.
    image_max_pixels: int | None = attrs.field(default=None, validator=_optional_positive(integer=True))
    image_alpha: bool = True
    #: URL schemes the provider fetches itself (others are read locally and sent inline or uploaded).
    image_url_schemes: tuple[str, ...] = ("http", "https")
    prompt_max_chars: int | None = None
    #: What the provider does with a longer prompt: truncates it silently, or rejects it.
    prompt_overflow: Literal["truncate", "reject"] = "reject"
    negative_prompt: bool = True
    negative_prompt_max_chars: int | None = None
    seed: bool = True
    #: Inclusive seed range the provider accepts.
    seed_range: tuple[int, int] = (0, 2**63 - 1)
    #: Same seed and request give the same video.
    deterministic: bool = False
    motion_strength: bool = False
    cancel: CancelSupport = "none"
    #: A job can be picked up by id from another process.
    resume: bool = True
    #: How long the provider keeps the result URL, in seconds (None: durable).
    result_url_ttl: float | None = None
    #: The account's limits, enforced by the core's governor for every process using one
    #: credential (`reelgen.governor`; `[limits.NAME]` overrides them). None: unlimited.
    #: Jobs the account may run at once (from the create until the job is seen to end).
    max_concurrency: int | None = attrs.field(default=None, validator=_optional_positive(integer=True))
    #: Creates per second.
    max_submit_rate: float | None = attrs.field(default=None, validator=_optional_positive(integer=False))
    #: Status queries plus cancels per second.
    max_query_rate: float | None = attrs.field(default=None, validator=_optional_positive(integer=False))
    #: What an omitted request field becomes (None: the core picks from the ranges above).
    #: Each must be one this provider accepts; checked when the capabilities are built.
    default_duration: float | None = None
    default_fps: float | None = None
    #: "W*H".
    default_size: str | None = None
    #: Costs money per generation.
    billed: bool = False
    #: What it costs, as data (`reelgen.pricing`; `[pricing.NAME]` overrides it). None: undeclared.
    pricing: Pricing | None = None
    options: Mapping[str, OptionSpec] = attrs.field(factory=dict, converter=plain_dict)

    def __attrs_post_init__(self) -> None:
        problems = _default_problems(self) + _area_problems(self)
        if problems:
            raise ValueError(f"capabilities of {self.model!r}: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, for `reelgen providers --json`."""
        from .serialization import converter

        return converter.unstructure(self)  # type: ignore[no-any-return]
