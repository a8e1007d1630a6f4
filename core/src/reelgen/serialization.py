"""JSON in and out for the contract, with cattrs.

`converter` turns `VideoRequest` and `VideoResult` into JSON-ready dicts and back.
Raw image bytes travel as `{"base64": "..."}`. Structuring errors are re-raised as
`ValidationError` naming the field, built from cattrs' exception notes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.preconf.json import make_converter

from .contract import VideoRequest, VideoResult, is_omitted
from .errors import ValidationError

__all__ = ["converter", "from_json", "structure", "to_json", "unstructure"]

T = TypeVar("T")

converter = make_converter(forbid_extra_keys=True)


def _exactly(kind: type, *accepted: type) -> Any:
    """A structure hook that refuses what cattrs would coerce: `bool("false")`, `str(1)`, `int(10.5)`."""

    def check(value: Any, _: Any) -> Any:
        if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value)

    return check


for _kind, _accepted in ((str, (str,)), (bool, (bool,)), (int, (int,)), (float, (int, float))):
    converter.register_structure_hook(_kind, _exactly(_kind, *_accepted))


def _structure_strings(value: Any, _: Any) -> list[str]:
    # Without this a string would be structured as the list of its characters.
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"expected a list of strings, got {value!r}")
    return list(value)


converter.register_structure_hook_func(lambda cls: cls == list[str], _structure_strings)


def _unstructure_image(value: str | bytes | None) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    return value


def _structure_image(value: Any, _: Any) -> str | bytes | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping) and set(value) == {"base64"} and isinstance(value["base64"], str):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValidationError("reference_image.base64 is not valid base64", field="reference_image") from exc
    raise ValidationError(
        'reference_image must be a string (URL or path), {"base64": "..."} or null', field="reference_image"
    )


def _unstructure_request(request: VideoRequest) -> dict[str, Any]:
    data = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "duration": request.duration,
        "fps": request.fps,
        "size": request.size,
        "seed": request.seed,
        "reference_image": _unstructure_image(request.reference_image),
        "motion_strength": request.motion_strength,
        "options": {name: dict(values) for name, values in request.options.items()},
    }
    # A field the caller left out stays left out, so it still takes the provider's default
    # when read back (`reelgen.contract.is_omitted`).
    return {name: value for name, value in data.items() if not is_omitted(value)}


_REQUEST_FIELDS = frozenset(field.name for field in attrs.fields(VideoRequest))


def _structure_request(data: Any, _: Any) -> VideoRequest:
    if not isinstance(data, Mapping):
        raise ValidationError(f"a request must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _REQUEST_FIELDS)
    if unknown:
        raise ValidationError(
            f"unknown request field(s) {', '.join(unknown)}; provider-specific settings go under "
            '"options", e.g. {"options": {"bailian_wan": {"audio": false}}}',
            field=unknown[0],
        )
    if "prompt" not in data:
        raise ValidationError("prompt is required", field="prompt")
    fields = dict(data)
    if "reference_image" in fields:
        fields["reference_image"] = _structure_image(fields["reference_image"], None)
    return VideoRequest(**fields)


converter.register_unstructure_hook(VideoRequest, _unstructure_request)
converter.register_structure_hook(VideoRequest, _structure_request)


def unstructure(value: object) -> Any:
    return converter.unstructure(value)


def structure(data: Any, cls: type[T]) -> T:
    """Structure `data` into `cls`; errors become `ValidationError` naming the field."""
    try:
        return converter.structure(data, cls)
    except ValidationError:
        raise
    except cattrs.BaseValidationError as exc:
        messages = cattrs.transform_error(exc, path=cls.__name__)
        raise ValidationError("; ".join(messages)) from exc
    except (TypeError, ValueError, KeyError) as exc:
        raise ValidationError(f"invalid {cls.__name__}: {exc}") from exc


def to_json(value: VideoRequest | VideoResult, **kwargs: Any) -> str:
    return json.dumps(unstructure(value), **kwargs)


def from_json(text: str | bytes, cls: type[T]) -> T:
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for bytes that are not UTF-8
        raise ValidationError(f"not valid JSON: {exc}") from exc
    return structure(data, cls)
