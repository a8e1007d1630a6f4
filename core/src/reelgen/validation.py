"""Check a request against a provider's declared capabilities, before any network call.

What the provider's API would reject raises `ValidationError`. What it would silently
ignore or change comes back as a warning (and becomes an error with `strict=True`).
Provider-specific rules (size to tier mapping, options) are the provider's `validate`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

from .capabilities import Capabilities, OptionSpec
from .contract import VideoRequest, parse_size
from .errors import StrictWarningError, ValidationError
from .images import ImageData, check_image, is_remote, read_image

__all__ = ["check_option_namespaces", "check_options", "check_request", "enforce_strict"]

_TYPES: dict[str, tuple[type, ...]] = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}


def _fmt(value: float) -> str:
    return f"{value:g}"


def _check_duration(request: VideoRequest, caps: Capabilities, provider: str) -> None:
    duration = request.duration
    if caps.durations is not None and duration not in caps.durations:
        allowed = ", ".join(_fmt(d) for d in caps.durations)
        raise ValidationError(
            f"duration {_fmt(duration)} s is not offered by {provider}; choose one of: {allowed} seconds",
            field="duration",
        )
    if caps.duration_range is not None:
        low, high = caps.duration_range
        whole = " whole" if caps.integer_duration else ""
        if caps.integer_duration and not duration.is_integer():
            raise ValidationError(
                f"duration {_fmt(duration)} s: {provider} takes{whole} seconds from {_fmt(low)} to {_fmt(high)} "
                f"(e.g. {max(low, min(high, round(duration))):g})",
                field="duration",
            )
        if not low <= duration <= high:
            raise ValidationError(
                f"duration {_fmt(duration)} s is out of range: {provider} takes{whole} seconds from "
                f"{_fmt(low)} to {_fmt(high)}",
                field="duration",
            )


def _check_fps(request: VideoRequest, caps: Capabilities, provider: str, warnings: list[str]) -> None:
    if caps.native_fps is not None and request.fps not in caps.native_fps:
        native = " or ".join(_fmt(f) for f in caps.native_fps)
        warnings.append(
            f"fps: {provider} always outputs {native} fps; {_fmt(request.fps)} fps was asked for "
            "and the result reports the measured rate"
        )
    if caps.fps_range is not None:
        low, high = caps.fps_range
        if not low <= request.fps <= high:
            raise ValidationError(
                f"fps {_fmt(request.fps)} is out of range: {provider} takes {_fmt(low)} to {_fmt(high)} fps",
                field="fps",
            )


def _check_size(request: VideoRequest, caps: Capabilities, provider: str) -> None:
    width, height = parse_size(request.size)
    # Declared sizes may be spelled "WxH"; the request's size is already normalized to "W*H".
    if caps.sizes is not None and not caps.resolution_tiers and (width, height) not in map(parse_size, caps.sizes):
        raise ValidationError(
            f"size {request.size} is not offered by {provider}; choose one of: {', '.join(caps.sizes)}",
            field="size",
        )
    if caps.side_range is not None:
        low, high = caps.side_range
        if not (low <= width <= high and low <= height <= high):
            raise ValidationError(
                f"size {request.size}: {provider} takes sides from {low} to {high} pixels", field="size"
            )
    multiple = caps.size_multiple_of
    limit = caps.max_frame_pixels
    if limit is not None and width * height > limit:
        raise ValidationError(
            f"size {request.size} is {_megapixels(width * height)}; {provider} renders at most "
            f"{_megapixels(limit)} ({limit} pixels): choose a smaller size "
            f"(e.g. {_shrunk(width, height, limit, caps)} keeps this shape)",
            field="size",
        )
    if multiple > 1 and not caps.resolution_tiers and (width % multiple or height % multiple):
        suggestion = f"{_round_to(width, multiple)}*{_round_to(height, multiple)}"
        raise ValidationError(
            f"size {request.size}: {provider} needs sides that are multiples of {multiple} (e.g. {suggestion})",
            field="size",
        )


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.3g} MP"


def _shrunk(width: int, height: int, limit: int, caps: Capabilities) -> str:
    """The size of this shape, in the provider's multiples, closest under `limit` pixels."""
    multiple = max(1, caps.size_multiple_of)
    scale = math.sqrt(limit / (width * height))
    low = caps.side_range[0] if caps.side_range is not None else multiple
    new_width = max(low, math.floor(width * scale / multiple) * multiple)
    new_height = max(low, math.floor(height * scale / multiple) * multiple)
    while new_width * new_height > limit and new_width > low:
        new_width -= multiple
    return f"{new_width}*{new_height}"


def _round_to(side: int, multiple: int) -> int:
    """The nearest multiple of `multiple` to `side` that is still a valid side (never 0)."""
    return max(multiple, multiple * round(side / multiple))


def _check_text(request: VideoRequest, caps: Capabilities, provider: str, warnings: list[str]) -> None:
    if caps.prompt_max_chars is not None and len(request.prompt) > caps.prompt_max_chars:
        message = f"prompt is {len(request.prompt)} characters; {provider} takes at most {caps.prompt_max_chars}"
        if caps.prompt_overflow == "reject":
            raise ValidationError(message + ": shorten it", field="prompt")
        warnings.append(message + " and silently cuts the rest")
    if request.negative_prompt is not None:
        if not caps.negative_prompt:
            warnings.append(f"negative_prompt: {provider} does not support it; it is not sent")
        elif (
            caps.negative_prompt_max_chars is not None and len(request.negative_prompt) > caps.negative_prompt_max_chars
        ):
            message = (
                f"negative_prompt is {len(request.negative_prompt)} characters; {provider} takes at most "
                f"{caps.negative_prompt_max_chars}"
            )
            if caps.prompt_overflow == "reject":
                raise ValidationError(message + ": shorten it", field="negative_prompt")
            warnings.append(message + " and silently cuts the rest")


def _check_seed_and_motion(request: VideoRequest, caps: Capabilities, provider: str, warnings: list[str]) -> None:
    if request.seed is not None:
        if not caps.seed:
            warnings.append(f"seed: {provider} does not take a seed; {request.seed} is not sent")
        else:
            low, high = caps.seed_range
            if not low <= request.seed <= high:
                raise ValidationError(
                    f"seed {request.seed} is out of range: {provider} takes {low} to {high}", field="seed"
                )
    if request.motion_strength is not None and not caps.motion_strength:
        warnings.append(
            f"motion_strength: {provider} has no motion strength setting; {_fmt(request.motion_strength)} is not sent"
        )


def _check_reference_image(
    request: VideoRequest, caps: Capabilities, provider: str, image: ImageData | None = None
) -> None:
    reference = request.reference_image
    if reference is None:
        if caps.requires_reference_image:
            raise ValidationError(
                f"{provider} ({caps.model}) is image-to-video: give reference_image (a URL, a path or bytes)",
                field="reference_image",
            )
        return
    if not caps.accepts_reference_image:
        raise ValidationError(f"{provider} does not take a reference image: remove it", field="reference_image")
    if is_remote(reference):
        scheme = str(reference).split("://", 1)[0].lower()
        if scheme not in caps.image_url_schemes:
            accepted = ", ".join(f"{s}://" for s in caps.image_url_schemes)
            raise ValidationError(
                f"reference_image: {provider} cannot fetch {scheme}:// URLs (it takes {accepted}, "
                "a local path or bytes)",
                field="reference_image",
            )
        return
    check_image(image if image is not None else read_image(reference, caps, provider=provider), caps, provider=provider)


def _check_bounds(option: str, value: float, low: float | None, high: float | None) -> None:
    if (low is None or value >= low) and (high is None or value <= high):
        return
    if low is not None and high is not None:
        bounds = f"between {_fmt(low)} and {_fmt(high)}"
    else:
        bounds = f"at least {_fmt(low)}" if low is not None else f"at most {_fmt(high or 0.0)}"
    raise ValidationError(f"option {option} must be {bounds}, got {value!r}", field="options")


def check_options(options: Mapping[str, Any], specs: Mapping[str, OptionSpec], *, provider: str) -> None:
    """Validate a provider's own options against its `OptionSpec`s. Unknown names are errors."""
    for name, value in options.items():
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(sorted(specs)) or "none"
            raise ValidationError(f"unknown option {provider}.{name}; {provider} takes: {known}", field="options")
        expected = _TYPES[spec.type]
        if (isinstance(value, bool) and spec.type != "bool") or not isinstance(value, expected):
            raise ValidationError(f"option {provider}.{name} must be {spec.type}, got {value!r}", field="options")
        if spec.choices is not None and value not in spec.choices:
            raise ValidationError(
                f"option {provider}.{name} must be one of {', '.join(map(str, spec.choices))}, got {value!r}",
                field="options",
            )
        # An int or float option by now (a spec with bounds is numeric).
        _check_bounds(f"{provider}.{name}", cast(float, value), spec.minimum, spec.maximum)
        for other in spec.requires:
            other_name, _, wanted = other.partition("=")
            actual = options.get(other_name, specs[other_name].default if other_name in specs else None)
            if wanted and str(actual).lower() != wanted.lower():
                raise ValidationError(
                    f"option {provider}.{name} needs {provider}.{other_name}={wanted}", field="options"
                )
            if not wanted and not actual:
                raise ValidationError(
                    f"option {provider}.{name} needs {provider}.{other_name} to be set", field="options"
                )


def check_request(
    request: VideoRequest, capabilities: Capabilities, *, provider: str, image: ImageData | None = None
) -> list[str]:
    """Check everything the capabilities declare; return warnings, raise `ValidationError`.

    Reads a local reference image to check it (format, size, pixels), never the network,
    unless the gate already read it (`image`).
    """
    warnings: list[str] = []
    _check_duration(request, capabilities, provider)
    _check_fps(request, capabilities, provider, warnings)
    _check_size(request, capabilities, provider)
    _check_text(request, capabilities, provider, warnings)
    _check_seed_and_motion(request, capabilities, provider, warnings)
    _check_reference_image(request, capabilities, provider, image)
    check_options(request.options_for(provider), capabilities.options, provider=provider)
    return warnings


def check_option_namespaces(request: VideoRequest, provider: str, known: set[str]) -> None:
    """An options namespace must be this provider or another installed one (a typo such as
    `bailian` for `bailian_wan` would otherwise be silently dropped)."""
    import difflib

    for namespace in request.options:
        if namespace == provider or namespace in known:
            continue
        close = difflib.get_close_matches(namespace, [provider, *sorted(known)], n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValidationError(
            f"options for {namespace!r}: no provider of that name is installed; {hint}"
            f"options for {provider} go under {provider!r} (e.g. -o {provider}.NAME=VALUE)",
            field="options",
        )


def enforce_strict(warnings: list[str], strict: bool) -> None:
    """With `strict`, any warning is an error."""
    if strict and warnings:
        raise StrictWarningError(warnings)
