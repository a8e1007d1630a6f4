"""The ways to break one field of a request: by the contract's rules, or by a provider's.

Each case starts from a request valid for the provider and replaces one field, so the
`ValidationError` it must raise can name that field.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from ._values import MAX_SEED, MAX_SIDE, InvalidRequest, requirement_value
from .images import DUMMY_HOST, default_image_dir, encode_image, image_as, over_area_image, oversized_image

if TYPE_CHECKING:
    from reelgen.capabilities import Capabilities, OptionSpec

__all__ = ["capability_cases", "construct_cases"]

Fields = dict[str, Any]

#: Values each field's own rules refuse, whatever the provider.
_CONSTRUCT: dict[str, tuple[tuple[Any, str], ...]] = {
    "prompt": (("", "empty"), ("  \n\t ", "only whitespace"), (None, "missing"), (42, "not a string")),
    "negative_prompt": ((42, "not a string"), ([b"x"], "not a string")),
    "duration": (
        (0, "zero"),
        (-1, "negative"),
        (-0.0001, "negative"),
        (math.nan, "NaN"),
        (math.inf, "infinite"),
        (-math.inf, "minus infinity"),
        (True, "a bool"),
        ("5", "a string"),
        (None, "missing"),
    ),
    "fps": (
        (0, "zero"),
        (-30, "negative"),
        (math.nan, "NaN"),
        (math.inf, "infinite"),
        (False, "a bool"),
        ("30", "a string"),
    ),
    "size": (
        ("", "empty"),
        ("1280", "one number"),
        ("1280*", "no height"),
        ("*720", "no width"),
        ("a*b", "not numbers"),
        ("0*720", "zero width"),
        ("1280*0", "zero height"),
        (f"{MAX_SIDE + 1}*16", "wider than any video"),
        ("-1280*720", "negative"),
        ("1280*720*3", "three numbers"),
        ("1280,720", "wrong separator"),
        ("1280.5*720", "fractional"),
        (1280, "not a string"),
        (None, "missing"),
    ),
    "seed": (
        (-1, "negative"),
        (MAX_SEED + 1, "above 2**63-1"),
        (1.5, "fractional"),
        (True, "a bool"),
        ("7", "a string"),
    ),
    "motion_strength": (
        (-0.01, "below 0"),
        (1.01, "above 1"),
        (math.nan, "NaN"),
        (math.inf, "infinite"),
        ("0.5", "a string"),
        (True, "a bool"),
    ),
    "reference_image": (
        ("", "empty string"),
        ("   ", "only whitespace"),
        (b"", "empty bytes"),
        ("ftp://example.com/cat.png", "unsupported URL scheme"),
        (42, "not a path, URL or bytes"),
    ),
}


def _construct_options(provider: str) -> tuple[tuple[Any, str], ...]:
    return (
        ("audio=false", "not a mapping"),
        ([provider], "a list"),
        ({"bad name!": {}}, "namespace is not a provider name"),
        ({provider: "audio"}, "namespace value is not a mapping"),
        ({provider: {"x": math.nan}}, "a NaN value"),
        ({provider: {"x": {1, 2}}}, "a set is not JSON"),
        ({provider: {"x": b"bytes"}}, "bytes are not JSON"),
        ({provider: {"x": {3: "int key"}}}, "a non-string key"),
    )


def construct_cases(base: st.SearchStrategy[Fields], provider: str) -> st.SearchStrategy[InvalidRequest]:
    table = {**_CONSTRUCT, "options": _construct_options(provider)}
    pairs = [(field, value, why) for field, values in table.items() for value, why in values]

    def build(t: tuple[Fields, tuple[str, Any, str]]) -> InvalidRequest:
        fields, (field, value, why) = t
        return InvalidRequest(field=field, reason=why, fields={**fields, field: value}, stage="construct")

    return st.tuples(base, st.sampled_from(pairs)).map(build)


# -- what only this provider's capabilities refuse ------------------------------------------


Case = tuple[str, str, Any]  # field, reason, value (or _MISSING to drop the field)
_MISSING = object()


def _duration_cases(caps: Capabilities) -> list[Case]:
    cases: list[Case] = []
    if caps.durations is not None:
        allowed = sorted(caps.durations)
        candidates = [allowed[0] / 2, allowed[-1] + 1, allowed[-1] * 3]
        candidates += [(a + b) / 2 for a, b in itertools.pairwise(allowed)]
        cases += [("duration", "not one of the offered durations", d) for d in candidates if d > 0 and d not in allowed]
    if caps.duration_range is not None:
        low, high = caps.duration_range
        if low > 0:
            cases.append(("duration", "below the minimum", low / 2))
            cases.append(("duration", "just below the minimum", math.nextafter(low, 0)))
        cases.append(("duration", "above the maximum", high + 1))
        cases.append(("duration", "just above the maximum", math.nextafter(high, math.inf)))
        if caps.integer_duration:
            inside = math.floor(low) + 0.5
            if low <= inside <= high:
                cases.append(("duration", "not a whole number of seconds", inside))
    return cases


def _fps_cases(caps: Capabilities) -> list[Case]:
    if caps.fps_range is None:
        return []
    low, high = caps.fps_range
    cases: list[Case] = [("fps", "above the maximum", high * 2), ("fps", "just above the maximum", high + 0.5)]
    if low > 0.01:
        cases.append(("fps", "below the minimum", low / 2))
    return cases


def _size_cases(caps: Capabilities) -> list[Case]:
    cases: list[Case] = []
    multiple = max(1, caps.size_multiple_of)
    if caps.side_range is not None:
        low, high = caps.side_range
        if low > 1:
            cases.append(("size", "a side below the minimum", f"{low - 1}*{_fit(low, multiple)}"))
        if high < MAX_SIDE:
            cases.append(
                ("size", "a side above the maximum", f"{_fit(low, multiple)}*{min(MAX_SIDE, high + multiple)}")
            )
    if caps.sizes is not None and not caps.resolution_tiers:
        listed = set(caps.sizes)
        for size in caps.sizes:
            w, _, h = size.partition("*")
            if w.isdigit() and h.isdigit():
                other = f"{int(w) + multiple}*{int(h)}"
                if other not in listed and _side_ok(caps, int(w) + multiple):
                    cases.append(("size", "not one of the offered sizes", other))
                    break
    over = _just_over_area(caps)
    if over is not None:
        cases.append(("size", f"just over max_frame_pixels ({caps.max_frame_pixels})", over))
    if multiple > 1 and not caps.resolution_tiers and caps.sizes is None:
        low = caps.side_range[0] if caps.side_range else 1
        width = _fit(low, multiple) + 1
        if _side_ok(caps, width):
            cases.append(("size", f"a side that is not a multiple of {multiple}", f"{width}*{_fit(low, multiple)}"))
    return cases


def _just_over_area(caps: Capabilities) -> str | None:
    """A free size with valid sides whose area is just over `max_frame_pixels` (None: none)."""
    limit = caps.max_frame_pixels
    if limit is None or caps.sizes is not None:
        return None
    multiple = max(1, caps.size_multiple_of)
    low, high = caps.side_range or (1, MAX_SIDE)
    top = high // multiple * multiple
    for width in (_fit(max(low, math.isqrt(limit)), multiple), top):
        height = _fit(max(low, limit // width + 1), multiple)
        if _side_ok(caps, width) and _side_ok(caps, height) and width * height > limit and height <= MAX_SIDE:
            return f"{width}*{height}"
    return None


def _fit(low: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is at least `low`."""
    return max(multiple, math.ceil(low / multiple) * multiple)


def _side_ok(caps: Capabilities, side: int) -> bool:
    return caps.side_range is None or caps.side_range[0] <= side <= caps.side_range[1]


def _text_cases(caps: Capabilities) -> list[Case]:
    cases: list[Case] = []
    if caps.prompt_overflow == "reject":
        if caps.prompt_max_chars is not None:
            cases.append(("prompt", "longer than the provider takes", "字" * (caps.prompt_max_chars + 1)))
        if caps.negative_prompt and caps.negative_prompt_max_chars is not None:
            limit = caps.negative_prompt_max_chars
            cases.append(("negative_prompt", "longer than the provider takes", "n" * (limit + 1)))
    return cases


def _seed_cases(caps: Capabilities) -> list[Case]:
    if not caps.seed:
        return []
    low, high = caps.seed_range
    cases: list[Case] = []
    if low > 0:
        cases.append(("seed", "below the provider's seed range", low - 1))
    if high < MAX_SEED:
        cases.append(("seed", "above the provider's seed range", high + 1))
        cases.append(("seed", "far above the provider's seed range", MAX_SEED))
    return cases


def _image_cases(caps: Capabilities, directory: Path) -> list[Case]:
    if not caps.accepts_reference_image:
        return [("reference_image", "the provider takes no reference image", encode_image(64, 64, "PNG"))]
    cases: list[Case] = []
    if caps.requires_reference_image:
        cases.append(("reference_image", "missing, and the provider is image-to-video", _MISSING))
    low, high = caps.image_side_range or (1, 1 << 30)
    fmt = next((f for f in ("PNG", "JPEG", "WEBP", "BMP") if f in caps.image_formats), "PNG")
    ok_side = max(low, 16)
    cases += [
        ("reference_image", "bytes that are not an image", b"this is not an image, just bytes \x00\x01\x02"),
        ("reference_image", "a truncated image", encode_image(ok_side, ok_side, fmt)[:40]),
        ("reference_image", "a path that does not exist", str(directory / "does-not-exist" / "cat.png")),
        ("reference_image", "a data: URI that is not base64", "data:image/png,not-base64"),
        ("reference_image", "a data: URI with broken base64", "data:image/png;base64,@@@@"),
    ]
    if caps.image_max_bytes is not None and caps.image_max_bytes < 64 * 1024 * 1024:
        big = oversized_image(caps.image_max_bytes, fmt, directory)
        cases.append(("reference_image", f"larger than {caps.image_max_bytes} bytes", str(big)))
    if caps.image_max_pixels is not None and "PNG" in caps.image_formats:
        wide = over_area_image(caps.image_max_pixels, directory, caps.image_side_range)
        if wide is not None:
            cases.append(("reference_image", f"just over image_max_pixels ({caps.image_max_pixels})", str(wide)))
    if low > 1:
        small = encode_image(low - 1, ok_side, fmt)
        cases.append(("reference_image", f"narrower than {low} pixels", small))
    if caps.image_side_range is not None and high < 30000:
        cases.append(("reference_image", f"wider than {high} pixels", encode_image(high + 1, ok_side, "PNG")))
    for other in ("GIF", "TIFF", "BMP", "WEBP", "JPEG"):
        if caps.image_formats and other not in caps.image_formats:
            cases.append(
                (
                    "reference_image",
                    f"{other}, a format the provider does not take",
                    encode_image(ok_side, ok_side, other),
                )
            )
            break
    if not caps.image_alpha:
        alpha_fmt = next((f for f in ("PNG", "WEBP") if f in caps.image_formats), None)
        if alpha_fmt is not None:
            cases.append(
                (
                    "reference_image",
                    "an image with an alpha channel",
                    encode_image(ok_side, ok_side, alpha_fmt, alpha=True),
                )
            )
    for scheme in ("http", "https", "oss"):
        if scheme not in caps.image_url_schemes:
            cases.append(
                ("reference_image", f"a {scheme}:// URL the provider cannot fetch", f"{scheme}://{DUMMY_HOST}/cat.png")
            )
    return cases


def _wrong_type(spec: OptionSpec) -> Any:
    return {"bool": "yes", "int": 1.5, "float": "1.0", "str": 7}[spec.type]


def _option_cases(caps: Capabilities, provider: str) -> list[tuple[str, Mapping[str, Any]]]:
    specs = caps.options
    cases: list[tuple[str, Mapping[str, Any]]] = [
        ("an option the provider does not declare", {"reelgen_contracts_unknown_option": True})
    ]
    for name, spec in sorted(specs.items()):
        needs = _requirements(specs, spec)
        cases.append((f"{name} of the wrong type", {**needs, name: _wrong_type(spec)}))
        if spec.type == "bool":
            cases.append((f"{name} as an int", {**needs, name: 1}))
        if spec.choices is not None:
            outside = {"str": "not-a-choice", "int": 10**9 + 7, "float": 1e9 + 0.5, "bool": None}[spec.type]
            if outside is not None and outside not in spec.choices:
                cases.append((f"{name} not one of its choices", {**needs, name: outside}))
        if spec.type in ("int", "float"):
            step = 1 if spec.type == "int" else 0.5
            if spec.minimum is not None:
                cases.append((f"{name} below its minimum", {**needs, name: _num(spec, spec.minimum - step)}))
            if spec.maximum is not None:
                cases.append((f"{name} above its maximum", {**needs, name: _num(spec, spec.maximum + step)}))
        for requirement in spec.requires:
            other, _, wanted = requirement.partition("=")
            other_spec = specs.get(other)
            if other_spec is None:
                continue
            valid_value = spec.default if spec.default is not None else _some_value(spec)
            if not wanted and not other_spec.default:
                cases.append((f"{name} without {other} set", {name: valid_value}))
                continue
            contrary = _contrary(other_spec, wanted) if wanted else _falsy(other_spec)
            if contrary is not None:
                cases.append((f"{name} without {requirement}", {name: valid_value, other: contrary}))
    return cases


def _num(spec: OptionSpec, value: float) -> Any:
    return math.floor(value) if spec.type == "int" else value


def _some_value(spec: OptionSpec) -> Any:
    if spec.choices:
        return spec.choices[0]
    if spec.type == "bool":
        return True
    if spec.type in ("int", "float"):
        value = spec.minimum if spec.minimum is not None else (spec.maximum if spec.maximum is not None else 0)
        return math.ceil(value) if spec.type == "int" else float(value)
    return "x"


def _requirements(specs: Mapping[str, OptionSpec], spec: OptionSpec) -> dict[str, Any]:
    needs: dict[str, Any] = {}
    for requirement in spec.requires:
        other, _, wanted = requirement.partition("=")
        value = requirement_value(specs[other], wanted) if other in specs else None
        if value is not None:
            needs[other] = value
    return needs


def _falsy(spec: OptionSpec) -> Any:
    """A valid value of `spec` that counts as not set, or None."""
    if spec.type == "bool":
        return False
    if spec.choices is not None:
        return next((c for c in spec.choices if not c), None)
    if spec.type in ("int", "float"):
        low = spec.minimum if spec.minimum is not None else -math.inf
        high = spec.maximum if spec.maximum is not None else math.inf
        return 0 if low <= 0 <= high else None
    return None


def _contrary(spec: OptionSpec, wanted: str) -> Any:
    """A valid value of `spec` that does not satisfy `=wanted`, or None."""
    if spec.type == "bool":
        return wanted.strip().lower() not in ("true", "1", "yes")
    if spec.choices is not None:
        return next((c for c in spec.choices if str(c).lower() != wanted.lower()), None)
    if spec.type == "str":
        return wanted + "-not"
    return None


def capability_cases(
    caps: Capabilities, provider: str, base: st.SearchStrategy[Fields], directory: Path | None
) -> st.SearchStrategy[InvalidRequest] | None:
    directory = directory or default_image_dir()
    simple = (
        _duration_cases(caps)
        + _fps_cases(caps)
        + _size_cases(caps)
        + _text_cases(caps)
        + _seed_cases(caps)
        + _image_cases(caps, directory)
    )
    builders: list[Callable[[Fields], InvalidRequest]] = []
    for field, why, value in simple:
        builders.append(_replace(field, why, value))
    for why, options in _option_cases(caps, provider):
        builders.append(_with_options(provider, why, options))
    if not builders:
        return None
    return st.tuples(base, st.sampled_from(builders)).map(lambda t: t[1](t[0]))


def _replace(field: str, why: str, value: Any) -> Callable[[Fields], InvalidRequest]:
    def build(fields: Fields) -> InvalidRequest:
        changed = dict(fields)
        if value is _MISSING:
            changed.pop(field, None)
        elif field == "reference_image" and isinstance(value, bytes) and len(value) > 1_000_000:
            changed[field] = image_as(value, "PNG", "path")
        else:
            changed[field] = value
        return InvalidRequest(field=field, reason=why, fields=changed, stage="capabilities")

    return build


def _with_options(provider: str, why: str, options: Mapping[str, Any]) -> Callable[[Fields], InvalidRequest]:
    def build(fields: Fields) -> InvalidRequest:
        changed = {**fields, "options": {provider: dict(options)}}
        return InvalidRequest(field="options", reason=why, fields=changed, stage="capabilities")

    return build
