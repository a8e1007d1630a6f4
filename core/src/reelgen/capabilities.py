"""What a provider can honour, declared up front so requests are checked before any paid call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._converters import plain_dict

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
    requires_reference_image: bool = False
    accepts_reference_image: bool = True
    #: Pillow format names accepted for the reference image.
    image_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP")
    image_max_bytes: int | None = None
    #: Inclusive (min, max) for each side of the reference image in pixels.
    image_side_range: tuple[int, int] | None = None
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
    #: Jobs the account may run at once, and submissions per second (None: unlimited).
    max_concurrency: int | None = None
    max_submit_rate: float | None = None
    #: Costs money per generation.
    billed: bool = False
    options: Mapping[str, OptionSpec] = attrs.field(factory=dict, converter=plain_dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, for `reelgen providers --json`."""
        from .serialization import converter

        return converter.unstructure(self)  # type: ignore[no-any-return]
