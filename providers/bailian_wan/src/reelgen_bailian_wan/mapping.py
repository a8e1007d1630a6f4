"""The normalized request -> `VideoSynthesis.async_call` keywords, and the warnings on the way.

The core has already run `reelgen.validation.check_request` against `CAPABILITIES`
(duration range and whole seconds, fps, prompt lengths, seed range, motion_strength,
the reference image's format, alpha, bytes and sides, and option types). This module
adds only what the capabilities cannot say:

* `size` -> `parameters.resolution`: the tier nearest in pixel count (option `resolution`
  overrides), and a warning whenever the output cannot have the requested size;
* the output's aspect ratio follows the image: a warning when it will differ;
* `audio_url`, `upload = "oss"` and region rules.

The SDK forwards every keyword it does not know into `parameters`, so `build_call`
builds the keywords from a closed list: `fps`, `size` and `motion_strength` never go out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from reelgen.capabilities import ResolutionTier
from reelgen.contract import VideoRequest, parse_size
from reelgen.errors import ValidationError
from reelgen.images import is_remote, read_image
from reelgen.uris import file_url_to_path, is_file_url

from .capabilities import MODEL, PROVIDER, TIERS
from .config import FLASH_REGIONS, WanConfig

__all__ = [
    "AUDIO_MAX_BYTES",
    "build_call",
    "expected_size",
    "nearest_tier",
    "resolve_tier",
    "validate_request",
]

#: Relative pixel-count difference below which a size "is" a tier (1280*720 is 720P).
_TIER_TOLERANCE = 0.05
#: Relative aspect-ratio difference tolerated before warning.
_ASPECT_TOLERANCE = 0.02
AUDIO_MAX_BYTES = 15_000_000
_AUDIO_SUFFIXES = (".wav", ".mp3")
_OTHER_AUDIO_SUFFIXES = (".aac", ".m4a", ".ogg", ".oga", ".flac", ".opus", ".wma", ".mp4", ".mov", ".webm")


def nearest_tier(width: int, height: int) -> ResolutionTier:
    """The tier nearest to `width*height` in pixel count, on a log scale (ratios, not differences)."""
    pixels = width * height
    return min(TIERS, key=lambda tier: abs(math.log(pixels / tier.pixels)))


def _tier(name: str) -> ResolutionTier:
    return next(tier for tier in TIERS if tier.name == name)


def expected_size(tier: ResolutionTier, aspect: float) -> tuple[int, int]:
    """About what the service renders for an image of this aspect ratio.

    The tier's pixel count at the image's aspect ratio, each side rounded down to a
    multiple of 16: this reproduces the one documented example (750x1000 at 720P gave
    816x1104); the service's exact rule is undocumented, so it is used in messages only.
    """
    step = tier.multiple_of
    width = math.floor(math.sqrt(tier.pixels * aspect) / step) * step
    height = math.floor(math.sqrt(tier.pixels / aspect) / step) * step
    return max(step, width), max(step, height)


def _ratio(width: int, height: int) -> str:
    divisor = math.gcd(width, height)
    w, h = width // divisor, height // divisor
    return f"{w}:{h}" if w <= 64 and h <= 64 else f"{width / height:.3f}:1"


def resolve_tier(request: VideoRequest) -> tuple[ResolutionTier, list[str]]:
    """The tier to send, and warnings when the output will not be `request.size` in pixels."""
    width, height = parse_size(request.size)
    nearest = nearest_tier(width, height)
    chosen = request.options_for(PROVIDER).get("resolution")
    warnings: list[str] = []
    if chosen is not None and chosen != nearest.name:
        tier = _tier(chosen)
        warnings.append(
            f"size: option resolution={chosen} overrides {request.size} (the nearest tier would be "
            f"{nearest.name}); the video has about {tier.pixels / 1e6:.2f} megapixels"
        )
        return tier, warnings
    tier = nearest
    if abs(width * height / tier.pixels - 1) > _TIER_TOLERANCE:
        offered = ", ".join(f"{t.name} (about {t.pixels / 1e6:.2f} MP)" for t in TIERS)
        warnings.append(
            f"size: {MODEL} renders resolution tiers, not {request.size}: {offered}; "
            f"using {tier.name}, the nearest in pixel count"
        )
    return tier, warnings


def _aspect_warnings(request: VideoRequest, tier: ResolutionTier) -> list[str]:
    width, height = parse_size(request.size)
    reference = request.reference_image
    if reference is None:
        return []
    if is_remote(reference):
        return [
            (
                f"size: the video's aspect ratio follows the reference image, which is a URL "
                f"reelgen does not download, so it cannot check that it is {_ratio(width, height)} like {request.size}"
            )
        ]
    image = read_image(reference)
    wanted, actual = width / height, image.width / image.height
    if abs(actual / wanted - 1) <= _ASPECT_TOLERANCE:
        return []
    out_w, out_h = expected_size(tier, actual)
    return [
        (
            f"size: {request.size} is {_ratio(width, height)}, but {MODEL} keeps the reference image's aspect ratio "
            f"({image.width}x{image.height}, {_ratio(image.width, image.height)}); expect about {out_w}*{out_h} "
            f"at {tier.name} (crop or pad the image to {_ratio(width, height)} to get that shape)"
        )
    ]


def _local_audio_path(value: str) -> Path:
    if is_file_url(value):
        return file_url_to_path(value)
    return Path(value).expanduser()


def _check_audio_url(value: str, options: Mapping[str, Any], config: WanConfig) -> list[str]:
    if not value.strip():
        raise ValidationError(f"option {PROVIDER}.audio_url is empty: give a URL or remove it", field="options")
    if options.get("audio") is False:
        return [
            f"option {PROVIDER}.audio_url: the service ignores it when audio=false (a silent video); it is not sent"
        ]
    lowered = value.lower()
    if lowered.startswith(("http://", "https://", "oss://")):
        suffix = PurePosixPath(urlparse(value).path).suffix.lower()
        if suffix in _OTHER_AUDIO_SUFFIXES:
            raise ValidationError(
                f"option {PROVIDER}.audio_url ends in {suffix}; {MODEL} takes wav or mp3 audio: convert it",
                field="options",
            )
        return []
    if lowered.startswith("data:") or ("://" in value and not lowered.startswith("file://")):
        raise ValidationError(
            f"option {PROVIDER}.audio_url must be an http(s):// or oss:// URL (or a local file with upload='oss')",
            field="options",
        )
    if options.get("upload", "inline") != "oss":
        raise ValidationError(
            f"option {PROVIDER}.audio_url is a local file: the service only fetches URLs; publish it as an "
            f"http(s) URL, or set {PROVIDER}.upload='oss' so the SDK uploads it (Beijing only)",
            field="options",
        )
    path = _local_audio_path(value)
    if not path.is_file():
        raise ValidationError(f"option {PROVIDER}.audio_url: {str(path)!r} does not exist", field="options")
    if path.suffix.lower() not in _AUDIO_SUFFIXES:
        raise ValidationError(
            f"option {PROVIDER}.audio_url: {path.name} is not .wav or .mp3; {MODEL} takes wav or mp3",
            field="options",
        )
    size = path.stat().st_size
    if size > AUDIO_MAX_BYTES:
        raise ValidationError(
            f"option {PROVIDER}.audio_url: {path.name} is {size / 1e6:.1f} MB; {MODEL} takes at most "
            f"{AUDIO_MAX_BYTES / 1e6:.0f} MB of audio: shorten or compress it",
            field="options",
        )
    return []


def validate_request(request: VideoRequest, config: WanConfig) -> list[str]:
    """Provider-specific checks after `check_request`: raise `ValidationError`, return warnings."""
    options = request.options_for(PROVIDER)
    if config.region not in FLASH_REGIONS and not config.endpoint_overridden():
        raise ValidationError(
            f"{MODEL} is only offered in {' and '.join(FLASH_REGIONS)} (region is {config.region}): change "
            f"providers.{PROVIDER}.region",
        )
    upload = options.get("upload", "inline")
    warnings: list[str] = []
    if upload == "oss":
        if config.region != "cn-beijing":
            raise ValidationError(
                f"option {PROVIDER}.upload='oss': DashScope's temporary upload is Beijing-only (region is "
                f"{config.region}); use upload='inline' (a data URI) or an http(s) URL",
                field="options",
            )
        if request.reference_image is not None and is_remote(request.reference_image):
            warnings.append(
                f"option {PROVIDER}.upload='oss' only applies to local images; the reference URL is sent as is"
            )
    tier, tier_warnings = resolve_tier(request)
    warnings.extend(tier_warnings)
    warnings.extend(_aspect_warnings(request, tier))
    audio_url = options.get("audio_url")
    if audio_url is not None:
        warnings.extend(_check_audio_url(audio_url, options, config))
    return warnings


def build_call(request: VideoRequest, *, seed: int, image: str, tier: str) -> dict[str, Any]:
    """The keywords for `VideoSynthesis.async_call`, from a closed list (nothing else is forwarded).

    `image` is what goes in `img_url`: a URL, a data URI, or a local path for the SDK to upload.
    """
    options = request.options_for(PROVIDER)
    prompt_extend = bool(options.get("prompt_extend", True))
    audio = bool(options.get("audio", True))
    call: dict[str, Any] = {
        "model": MODEL,
        "prompt": request.prompt,
        "img_url": image,
        # The SDK also sends the deprecated input.extend_prompt (default true): keep it in step.
        "extend_prompt": prompt_extend,
        "prompt_extend": prompt_extend,
        "duration": int(request.duration),
        "resolution": tier,
        "seed": seed,
        "watermark": bool(options.get("watermark", False)),
        # Not a named SDK keyword: it goes to parameters.audio (flash only). Sent explicitly,
        # because silence needs an explicit false.
        "audio": audio,
    }
    if request.negative_prompt is not None:
        call["negative_prompt"] = request.negative_prompt
    if "shot_type" in options:
        call["shot_type"] = options["shot_type"]
    if options.get("audio_url") is not None and audio:
        call["audio_url"] = options["audio_url"]
    return call
