"""The normalized `video.generate` contract: what a caller asks for and what comes back.

Both classes are frozen and validate on construction, so a `VideoRequest` that exists
is well formed; whether a given provider can honour it is `reelgen.validation`'s job.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any, Union

import attrs

from ._converters import plain_dict, string_list
from .errors import ValidationError

__all__ = [
    "DEFAULT_DURATION",
    "DEFAULT_FPS",
    "DEFAULT_SIZE",
    "SCHEMA_VERSION",
    "ImageInput",
    "VideoRequest",
    "VideoResult",
    "is_omitted",
    "parse_size",
    "with_provider_defaults",
]

#: Version of the contract's JSON Schema. Bump the minor for additions, the major for changes.
SCHEMA_VERSION = "1.0"

#: What `reference_image` accepts: a URL or path string, a path object, or raw bytes.
ImageInput = Union[str, "os.PathLike[str]", bytes]

# [0-9], not \d: \d also matches other scripts' digits, which the JSON Schema refuses.
_SIZE_RE = re.compile(r"\s*([0-9]{1,5})\s*[*xX×]\s*([0-9]{1,5})\s*")
_URL_SCHEMES = ("http://", "https://", "oss://", "file://", "data:")
_MAX_SIDE = 16384
_MAX_SEED = 2**63 - 1
_OPTION_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def parse_size(size: str) -> tuple[int, int]:
    """Parse `"W*H"` or `"WxH"` into `(W, H)`; raise `ValidationError` saying what is wrong."""
    if not isinstance(size, str):
        raise ValidationError(f"size must be a string like '1280*720', got {type(size).__name__}", field="size")
    match = _SIZE_RE.fullmatch(size)
    if not match:
        raise ValidationError(f"size {size!r} is not of the form 'W*H' or 'WxH' (for example '1280*720')", field="size")
    width, height = int(match.group(1)), int(match.group(2))
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE):
        raise ValidationError(f"size {size!r}: width and height must be between 1 and {_MAX_SIDE} pixels", field="size")
    return width, height


class _OmittedFloat(float):
    """A number the caller left out (`duration`, `fps`): the pipeline's gate replaces it with
    the provider's declared default (`Capabilities.default_duration` / `default_fps`)."""

    __slots__ = ()


class _OmittedStr(str):
    """A size the caller left out: the gate replaces it with `Capabilities.default_size`."""

    __slots__ = ()


#: What an omitted field holds until the gate resolves it (equal to the old fixed defaults).
DEFAULT_DURATION = _OmittedFloat(5.0)
DEFAULT_FPS = _OmittedFloat(30.0)
DEFAULT_SIZE = _OmittedStr("1280*720")


def is_omitted(value: object) -> bool:
    """True for a `duration`, `fps` or `size` the caller did not give."""
    return isinstance(value, (_OmittedFloat, _OmittedStr))


def _normalize_size(value: object) -> str:
    if isinstance(value, _OmittedStr):
        return value
    width, height = parse_size(value)  # type: ignore[arg-type]
    return f"{width}*{height}"


def _positive_number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(
            f"{name} must be a number of {'seconds' if name == 'duration' else 'frames per second'}, got {value!r}",
            field=name,
        )
    number = _to_float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValidationError(f"{name} must be a finite number greater than 0, got {value!r}", field=name)
    return number


# Named converters, not closures from a factory: mypy's attrs plugin only understands these.
def _duration(value: object) -> float:
    if isinstance(value, _OmittedFloat):
        return value
    return _positive_number("duration", value)


def _fps(value: object) -> float:
    if isinstance(value, _OmittedFloat):
        return value
    return _positive_number("fps", value)


def _to_float(value: float) -> float:
    try:
        return float(value)
    except OverflowError:  # an int too large for a float: out of range like any other
        return math.inf


def _prompt(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"prompt must be a string, got {type(value).__name__}", field="prompt")
    if not value.strip():
        raise ValidationError("prompt is empty: describe the video you want", field="prompt")
    return value


def _negative_prompt(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(
            f"negative_prompt must be a string or None, got {type(value).__name__}", field="negative_prompt"
        )
    return value if value.strip() else None


def _seed(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"seed must be a whole number or None, got {value!r}", field="seed")
    if not 0 <= value <= _MAX_SEED:
        raise ValidationError(f"seed must be between 0 and {_MAX_SEED}, got {value}", field="seed")
    return value


def _motion_strength(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(
            f"motion_strength must be a number from 0.0 to 1.0 or None, got {value!r}", field="motion_strength"
        )
    number = _to_float(value)
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ValidationError(f"motion_strength must be from 0.0 to 1.0, got {value!r}", field="motion_strength")
    return number + 0.0  # -0.0 becomes 0.0: equal values must serialize (and key) the same


def _reference_image(value: object) -> str | bytes | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        if not data:
            raise ValidationError("reference_image is empty bytes: pass the image's content", field="reference_image")
        return data
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ValidationError(
            "reference_image must be a URL (https://, oss://, file://, data:), a local path or bytes, "
            f"got {type(value).__name__}",
            field="reference_image",
        )
    if not value.strip():
        raise ValidationError("reference_image is an empty string: give a URL or a path", field="reference_image")
    if "://" in value and not value.lower().startswith(_URL_SCHEMES):
        scheme = value.split("://", 1)[0]
        raise ValidationError(
            f"reference_image has unsupported URL scheme {scheme!r}: use https://, http://, oss://, file:// "
            "or a local path",
            field="reference_image",
        )
    return value


def _json_value(path: str, value: object) -> Any:
    """Check that `value` is JSON and return a fresh copy shaped as JSON reads back (lists, dicts)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"option {path} must be a finite number, got {value!r}", field="options")
        return value
    if isinstance(value, (list, tuple)):
        return [_json_value(f"{path}[{index}]", item) for index, item in enumerate(value)]
    if isinstance(value, Mapping):
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"option {path} has a non-string key {key!r}", field="options")
            copy[key] = _json_value(f"{path}.{key}", item)
        return copy
    raise ValidationError(
        f"option {path} must be a JSON value (string, number, bool, list, mapping), got {type(value).__name__}",
        field="options",
    )


def _options(value: object) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(
            'options must be a mapping of provider name to its options, e.g. {"bailian_wan": {"audio": false}}',
            field="options",
        )
    normalized: dict[str, dict[str, Any]] = {}
    for provider, provider_options in value.items():
        if not isinstance(provider, str) or not _OPTION_NAME_RE.fullmatch(provider):
            raise ValidationError(
                f"options key {provider!r} must be a provider name, e.g. 'bailian_wan'", field="options"
            )
        if not isinstance(provider_options, Mapping):
            raise ValidationError(
                f"options[{provider!r}] must be a mapping of option name to value, got "
                f"{type(provider_options).__name__} (options are namespaced by provider)",
                field="options",
            )
        # A deep copy: a frozen request must not change when the caller's dicts do.
        normalized[provider] = _json_value(provider, provider_options)
    return normalized


@attrs.frozen(kw_only=True)
class VideoRequest:
    """A request for one video. Invalid values raise `ValidationError` naming the field."""

    prompt: str = attrs.field(converter=_prompt)
    negative_prompt: str | None = attrs.field(default=None, converter=_negative_prompt)
    #: Left out, `duration`, `fps` and `size` take the provider's declared defaults at the
    #: pipeline's gate (5 s, 30 fps and 1280*720 where a provider declares none).
    duration: float = attrs.field(default=DEFAULT_DURATION, converter=_duration)
    fps: float = attrs.field(default=DEFAULT_FPS, converter=_fps)
    size: str = attrs.field(default=DEFAULT_SIZE, converter=_normalize_size)
    seed: int | None = attrs.field(default=None, converter=_seed)
    reference_image: str | bytes | None = attrs.field(default=None, converter=_reference_image, repr=False)
    motion_strength: float | None = attrs.field(default=None, converter=_motion_strength)
    options: dict[str, dict[str, Any]] = attrs.field(factory=dict, converter=_options, hash=False)

    @property
    def width(self) -> int:
        return parse_size(self.size)[0]

    @property
    def height(self) -> int:
        return parse_size(self.size)[1]

    def options_for(self, provider: str) -> dict[str, Any]:
        """The options namespaced under `provider` (empty if none)."""
        return dict(self.options.get(provider, {}))


_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_RESULT_SIZE_RE = re.compile(r"[0-9]+\*[0-9]+")


def _measured(name: str) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValidationError(f"result {attribute.name} must be a finite number > 0, got {value!r}", field=name)

    return check


def _result_size(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _RESULT_SIZE_RE.fullmatch(value):
        raise ValidationError(f"result size must be 'W*H' as measured, got {value!r}", field="size")


def _result_sha256(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not _SHA256_RE.fullmatch(value):
        raise ValidationError(f"result sha256 must be 64 lowercase hex digits, got {value!r}", field="sha256")


def _result_bytes(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"result bytes must be a whole number >= 1, got {value!r}", field="bytes")


def _result_seed(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValidationError(f"result seed must be a whole number or None, got {value!r}", field="seed")


def _non_empty(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"result {attribute.name} must be a non-empty string", field=attribute.name)


@attrs.frozen(kw_only=True)
class VideoResult:
    """What was actually produced, measured from the stored file.

    Validated on construction like the request: a provider or storage plugin that reports
    a non-positive duration, a malformed size or hash cannot produce a result.
    """

    video_url: str = attrs.field(validator=_non_empty)
    duration: float = attrs.field(validator=_measured("duration"))
    fps: float = attrs.field(validator=_measured("fps"))
    seed: int | None = attrs.field(validator=_result_seed)
    size: str = attrs.field(validator=_result_size)
    provider: str = attrs.field(validator=_non_empty)
    model: str = attrs.field(validator=_non_empty)
    sha256: str = attrs.field(validator=_result_sha256)
    bytes: int = attrs.field(validator=_result_bytes)
    task_id: str | None = None
    source_url: str | None = None
    expires_at: str | None = None
    cached: bool = False
    warnings: list[str] = attrs.field(factory=list, converter=string_list, hash=False)
    usage: dict[str, Any] = attrs.field(factory=dict, converter=plain_dict, hash=False)


def with_provider_defaults(request: VideoRequest, capabilities: Any) -> VideoRequest:
    """`request` with each omitted `duration`, `fps` and `size` set to the provider's declared
    default (`Capabilities.default_*`), or to the plain fixed default where it declares none."""
    changes: dict[str, Any] = {}
    for name, declared in (
        ("duration", getattr(capabilities, "default_duration", None)),
        ("fps", getattr(capabilities, "default_fps", None)),
        ("size", getattr(capabilities, "default_size", None)),
    ):
        value = getattr(request, name)
        if is_omitted(value):
            plain = str(value) if name == "size" else float(value)
            changes[name] = declared if declared is not None else plain
    return attrs.evolve(request, **changes) if changes else request
