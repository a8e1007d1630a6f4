"""Arbitrary, self-consistent `Capabilities`: every one admits at least one valid request.

Used to test the strategies themselves (valid requests pass the core's checks, invalid
ones fail them, for *any* provider), and by anyone testing code generic over providers.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

if TYPE_CHECKING:
    from reelgen.capabilities import Capabilities, OptionSpec

__all__ = ["capabilities", "option_specs"]

_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")


@st.composite
def _durations(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["list", "range", "integer_range", "free"]))
    if kind == "list":
        values = draw(
            st.lists(st.sampled_from([1.0, 2.0, 2.5, 4.0, 5.0, 8.0, 10.0, 15.0]), min_size=1, max_size=4, unique=True)
        )
        return {"durations": tuple(sorted(values))}
    if kind == "free":
        return {}
    low = draw(st.sampled_from([0.1, 0.5, 1.0, 2.0, 3.0]))
    high = low + draw(st.sampled_from([0.0, 1.0, 4.0, 13.0, 60.0]))
    if kind == "integer_range":
        high = max(high, math.ceil(low))
    return {"duration_range": (low, high), "integer_duration": kind == "integer_range"}


@st.composite
def _fps(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["native", "range", "both", "free"]))
    out: dict[str, Any] = {}
    if kind in ("range", "both"):
        low = draw(st.sampled_from([1.0, 8.0, 24.0]))
        out["fps_range"] = (low, low + draw(st.sampled_from([0.0, 6.0, 36.0, 96.0])))
    if kind in ("native", "both"):
        if "fps_range" in out:
            out["native_fps"] = (out["fps_range"][0],)
        else:
            out["native_fps"] = tuple(
                draw(st.lists(st.sampled_from([16.0, 24.0, 25.0, 30.0]), min_size=1, max_size=2, unique=True))
            )
    return out


@st.composite
def _sizes(draw: st.DrawFn) -> dict[str, Any]:
    from reelgen.capabilities import ResolutionTier

    kind = draw(st.sampled_from(["list", "free", "tiers"]))
    multiple = draw(st.sampled_from([1, 2, 8, 16]))
    if kind == "list":
        sizes = draw(
            st.lists(
                st.sampled_from([(1280, 720), (720, 1280), (960, 960), (640, 480), (1920, 1080)]),
                min_size=1,
                max_size=3,
                unique=True,
            )
        )
        multiple = math.gcd(*(side for size in sizes for side in size), multiple)
        return {"sizes": tuple(f"{w}*{h}" for w, h in sizes), "size_multiple_of": multiple}
    if kind == "tiers":
        tiers = draw(
            st.lists(
                st.sampled_from([("480P", 640 * 480), ("720P", 1280 * 720), ("1080P", 1920 * 1080)]),
                min_size=1,
                max_size=3,
                unique=True,
            )
        )
        out: dict[str, Any] = {
            "resolution_tiers": tuple(ResolutionTier(name=n, pixels=p, multiple_of=multiple) for n, p in tiers),
            "aspect_follows_image": draw(st.booleans()),
        }
        if draw(st.booleans()):
            out["side_range"] = (16, 4096)
        return out
    low = draw(st.sampled_from([1, 2, 16, 64, 240]))
    high = low + draw(st.sampled_from([0, 64, 1000, 8000]))
    if math.ceil(low / multiple) * multiple > high:
        multiple = 1
    return {"side_range": (low, high), "size_multiple_of": multiple}


@st.composite
def _images(draw: st.DrawFn) -> dict[str, Any]:
    requires = draw(st.booleans())
    accepts = requires or draw(st.integers(0, 4)) > 0  # mostly providers that take an image
    out: dict[str, Any] = {"requires_reference_image": requires, "accepts_reference_image": accepts}
    out["image_formats"] = tuple(draw(st.lists(st.sampled_from(_FORMATS), min_size=1, max_size=5, unique=True)))
    out["image_max_bytes"] = draw(st.sampled_from([None, 2_000_000, 10_000_000]))
    if draw(st.booleans()):
        low = draw(st.sampled_from([1, 16, 240, 360]))
        out["image_side_range"] = (low, low + draw(st.sampled_from([100, 1640, 7760])))
    out["image_alpha"] = draw(st.booleans())
    out["image_url_schemes"] = tuple(draw(st.lists(st.sampled_from(["http", "https", "oss"]), unique=True)))
    return out


@st.composite
def _text(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "prompt_max_chars": draw(st.sampled_from([None, 1, 40, 1500])),
        "prompt_overflow": draw(st.sampled_from(["truncate", "reject"])),
        "negative_prompt": draw(st.booleans()),
        "negative_prompt_max_chars": draw(st.sampled_from([None, 5, 500])),
    }


@st.composite
def _seed(draw: st.DrawFn) -> dict[str, Any]:
    seed = draw(st.booleans())
    out: dict[str, Any] = {"seed": seed, "motion_strength": draw(st.booleans())}
    if seed:
        out["seed_range"] = draw(st.sampled_from([(0, 2**63 - 1), (0, 2**31 - 1), (1, 1000)]))
    return out


def option_specs() -> st.SearchStrategy[dict[str, OptionSpec]]:
    """A provider's options: a few specs of each type, some needing another option set."""
    from reelgen.capabilities import OptionSpec

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, OptionSpec]:
        specs: dict[str, OptionSpec] = {}
        for index in range(draw(st.integers(0, 4))):
            name = f"opt_{index}"
            kind = draw(st.sampled_from(["bool", "int", "float", "str"]))
            fields: dict[str, Any] = {"type": kind, "doc": f"option {index}"}
            if kind == "str" and draw(st.booleans()):
                fields["choices"] = ("a", "b", "c")
                fields["default"] = "a"
            elif kind == "int":
                fields["minimum"] = draw(st.sampled_from([None, 0, 5]))
                fields["maximum"] = draw(st.sampled_from([None, 10, 600]))
            elif kind == "float":
                fields["minimum"] = draw(st.sampled_from([None, 0.0, -1.5]))
                fields["maximum"] = draw(st.sampled_from([None, 1.0, 600.0]))
            elif kind == "bool":
                fields["default"] = draw(st.booleans())
            bools = [n for n, s in specs.items() if s.type == "bool"]
            needs_another = draw(st.booleans())
            if bools and needs_another:
                wanted = draw(st.sampled_from(["=true", "=false", ""]))  # "" : the other must be set
                fields["requires"] = (f"{draw(st.sampled_from(bools))}{wanted}",)
            specs[name] = OptionSpec(**fields)
        return specs

    return build()


@st.composite
def _areas(draw: st.DrawFn, fields: dict[str, Any]) -> dict[str, Any]:
    """Area limits (or none) that agree with the sizes and picture sides already drawn."""
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        listed = [int(w) * int(h) for w, _, h in (s.partition("*") for s in fields.get("sizes") or ())]
        multiple = max(1, fields.get("size_multiple_of", 1))
        side_low = fields["side_range"][0] if fields.get("side_range") else 1
        side_low = math.ceil(side_low / multiple) * multiple
        tiers = [2 * tier.pixels for tier in fields.get("resolution_tiers", ())]  # tier sizes are approximate
        smallest = max([side_low * side_low, *listed, *tiers])
        out["max_frame_pixels"] = draw(st.sampled_from(sorted({smallest, max(smallest, 640 * 480), 1920 * 1080})))
        if out["max_frame_pixels"] < smallest:
            out["max_frame_pixels"] = smallest
    if draw(st.booleans()):
        low = fields["image_side_range"][0] if fields.get("image_side_range") else 1
        out["image_max_pixels"] = draw(st.sampled_from(sorted({max(low * low, 4096), max(low * low, 640 * 480)})))
    return out


def capabilities() -> st.SearchStrategy[Capabilities]:
    from reelgen.capabilities import Capabilities

    @st.composite
    def build(draw: st.DrawFn) -> Capabilities:
        fields: dict[str, Any] = {"model": draw(st.sampled_from(["model-a", "wan-ish", "模型"]))}
        for part in (_durations(), _fps(), _sizes(), _images(), _text(), _seed()):
            fields.update(draw(part))
        fields.update(draw(_areas(fields)))
        fields["deterministic"] = draw(st.booleans())
        fields["cancel"] = draw(st.sampled_from(["none", "pending", "any"]))
        fields["resume"] = draw(st.booleans())
        fields["result_url_ttl"] = draw(st.sampled_from([None, 3600.0, 86400.0]))
        fields["billed"] = draw(st.booleans())
        fields["options"] = draw(option_specs())
        return Capabilities(**fields)

    return build()
