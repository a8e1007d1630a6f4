"""Whether declared capabilities are coherent: some request valid, every limit meaningful."""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs

from reelgen.capabilities import Capabilities, OptionSpec
from reelgen.errors import ValidationError

__all__ = ["capability_problems"]


def capability_problems(caps: Capabilities) -> list[str]:
    from reelgen.contract import parse_size

    problems = []
    if not caps.model:
        problems.append("model is empty")
    if caps.durations is not None and (not caps.durations or min(caps.durations) <= 0):
        problems.append(f"durations {caps.durations} must be non-empty and > 0")
    if caps.duration_range is not None:
        low, high = caps.duration_range
        if not 0 < low <= high:
            problems.append(f"duration_range {caps.duration_range} must be 0 < low <= high")
        elif caps.integer_duration and math.ceil(low) > high:
            problems.append(f"integer_duration with duration_range {caps.duration_range} admits no whole second")
    if caps.fps_range is not None and not 0 < caps.fps_range[0] <= caps.fps_range[1]:
        problems.append(f"fps_range {caps.fps_range} must be 0 < low <= high")
    if caps.native_fps is not None:
        if not caps.native_fps or min(caps.native_fps) <= 0:
            problems.append(f"native_fps {caps.native_fps} must be non-empty and > 0")
        elif caps.fps_range is not None and not any(
            caps.fps_range[0] <= f <= caps.fps_range[1] for f in caps.native_fps
        ):
            problems.append(f"no native_fps {caps.native_fps} lies inside fps_range {caps.fps_range}")
    if caps.sizes is not None:
        for size in caps.sizes:
            try:
                width, height = parse_size(size)
            except ValidationError:
                problems.append(f"size {size!r} is not 'W*H'")
                continue
            if f"{width}*{height}" != size:
                problems.append(f"size {size!r} is not normalized (write '{width}*{height}')")
            multiple = caps.size_multiple_of
            if not caps.resolution_tiers and (width % multiple or height % multiple):
                problems.append(f"size {size} is not a multiple of size_multiple_of={multiple}")
    if caps.side_range is not None:
        low, high = caps.side_range
        if not 0 < low <= high or math.ceil(low / caps.size_multiple_of) * caps.size_multiple_of > high:
            problems.append(f"side_range {caps.side_range} admits no side (size_multiple_of={caps.size_multiple_of})")
    if caps.requires_reference_image and not caps.accepts_reference_image:
        problems.append("requires_reference_image but not accepts_reference_image")
    unknown_formats = set(caps.image_formats) - {"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO", "HEIF", "AVIF"}
    if unknown_formats:
        problems.append(f"image_formats {sorted(unknown_formats)} are not Pillow format names")
    if set(caps.image_url_schemes) - {"http", "https", "oss"}:
        problems.append(f"image_url_schemes {caps.image_url_schemes} must be among http, https, oss")
    if caps.image_side_range is not None and not 0 < caps.image_side_range[0] <= caps.image_side_range[1]:
        problems.append(f"image_side_range {caps.image_side_range} must be 0 < low <= high")
    low_seed, high_seed = caps.seed_range
    if not 0 <= low_seed <= high_seed <= 2**63 - 1:
        problems.append(f"seed_range {caps.seed_range} must lie within 0..2**63-1")
    if caps.prompt_max_chars is not None and caps.prompt_max_chars < 1:
        problems.append("prompt_max_chars must be >= 1")
    if caps.result_url_ttl is not None and caps.result_url_ttl <= 0:
        problems.append("result_url_ttl must be > 0 or None")
    if caps.cancel not in ("none", "pending", "any"):
        problems.append(f"cancel {caps.cancel!r} must be none, pending or any")
    for name, spec in caps.options.items():
        problems += [f"option {name}: {p}" for p in _option_problems(name, spec, caps.options)]
    return problems


def _option_problems(name: str, spec: OptionSpec, specs: Mapping[str, OptionSpec]) -> list[str]:
    from reelgen.validation import check_options

    problems = []
    if not name.isidentifier():
        problems.append("the name is not an identifier")
    if spec.type not in ("bool", "int", "float", "str"):
        problems.append(f"type {spec.type!r} is not bool, int, float or str")
    if spec.default is not None:
        try:
            check_options({name: spec.default}, {name: attrs.evolve(spec, requires=())}, provider="p")
        except ValidationError as exc:
            problems.append(f"the default {spec.default!r} is not a valid value ({exc})")
    for requirement in spec.requires:
        other = requirement.partition("=")[0]
        if other not in specs:
            problems.append(f"requires {requirement!r}, but there is no option {other!r}")
    if not spec.doc:
        problems.append("has no doc")
    return problems
