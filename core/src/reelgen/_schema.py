"""The JSON Schema of the `video.generate` contract (`reelgen schema`).

Versioned with `SCHEMA_VERSION`: the minor version grows when fields are added, the
major version when a field changes meaning or type. A test keeps it in step with the
attrs classes.
"""

from __future__ import annotations

from typing import Any

from .contract import SCHEMA_VERSION

__all__ = ["json_schema"]

_NUMBER_GT0 = {"type": "number", "exclusiveMinimum": 0}
_SIZE = {"type": "string", "pattern": r"^\s*[0-9]{1,5}\s*[*xX×]\s*[0-9]{1,5}\s*$"}
_NULLABLE_STRING = {"type": ["string", "null"]}


def _request() -> dict[str, Any]:
    return {
        "type": "object",
        "title": "VideoRequest",
        "additionalProperties": False,
        "required": ["prompt"],
        "properties": {
            "prompt": {"type": "string", "minLength": 1, "pattern": r"\S", "description": "What the video shows."},
            "negative_prompt": {**_NULLABLE_STRING, "description": "What to avoid."},
            "duration": {
                **_NUMBER_GT0,
                "default": 5,
                "description": "Seconds. Left out: the provider's declared default (else 5).",
            },
            "fps": {
                **_NUMBER_GT0,
                "default": 30,
                "description": "Frames per second wanted. Left out: the provider's declared default (else 30).",
            },
            "size": {
                **_SIZE,
                "default": "1280*720",
                "description": "'W*H' (or 'WxH'), in pixels. Left out: the provider's default (else 1280*720).",
            },
            "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**63 - 1},
            "reference_image": {
                "description": "URL (https://, http://, oss://, file://, data:), local path, or raw bytes as base64.",
                "oneOf": [
                    {"type": "string", "minLength": 1},
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["base64"],
                        "properties": {"base64": {"type": "string", "contentEncoding": "base64"}},
                    },
                    {"type": "null"},
                ],
            },
            "motion_strength": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "options": {
                "type": "object",
                "description": "Provider-specific options, namespaced by provider name.",
                "additionalProperties": {"type": "object"},
                "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_\-]*$"},
                "default": {},
            },
        },
    }


def _result() -> dict[str, Any]:
    return {
        "type": "object",
        "title": "VideoResult",
        "additionalProperties": False,
        "required": [
            "video_url",
            "duration",
            "fps",
            "seed",
            "size",
            "provider",
            "model",
            "task_id",
            "source_url",
            "expires_at",
            "sha256",
            "bytes",
            "cached",
            "warnings",
            "usage",
        ],
        "properties": {
            "video_url": {"type": "string", "minLength": 1, "description": "Durable URL of the stored video."},
            "duration": {**_NUMBER_GT0, "description": "Seconds, measured from the stored file."},
            "fps": {**_NUMBER_GT0, "description": "Measured from the stored file."},
            "seed": {
                "type": ["integer", "null"],
                "description": "The seed used; null only for providers that take no seed.",
            },
            "size": {"type": "string", "pattern": r"^[0-9]+\*[0-9]+$", "description": "Measured 'W*H'."},
            "provider": {"type": "string", "minLength": 1},
            "model": {"type": "string", "minLength": 1},
            "task_id": _NULLABLE_STRING,
            "source_url": {**_NULLABLE_STRING, "description": "The provider's original (expiring) URL."},
            "expires_at": {**_NULLABLE_STRING, "description": "When source_url expires (ISO 8601)."},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "bytes": {"type": "integer", "minimum": 1},
            "cached": {"type": "boolean"},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "usage": {"type": "object", "description": "What the provider billed."},
        },
    }


def json_schema() -> dict[str, Any]:
    """The versioned JSON Schema (draft 2020-12) of `VideoRequest` and `VideoResult`."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://reelgen.dev/schema/video.generate/{SCHEMA_VERSION}",
        "title": "reelgen video.generate contract",
        "version": SCHEMA_VERSION,
        "$defs": {"VideoRequest": _request(), "VideoResult": _result()},
    }
