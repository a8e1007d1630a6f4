"""Checking a create body field by field (reference §3), before any media is fetched.

Messages follow the one wording the reference records for a field error,
"Field required: input.img_url": `<what is wrong>: <field path>`. The service's
exact wording for the other fields is not documented.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .config import EmulatorConfig
from .errors import ApiError

__all__ = ["INPUT_KEYS", "PARAMETER_KEYS", "CreateSpec", "parse_create"]

RESOLUTIONS = ("720P", "1080P")
SHOT_TYPES = ("single", "multi")
SEED_MAX = 2147483647
DURATION_RANGE = (2, 15)

# Input keys the service knows for this model; `extend_prompt` and `function` are
# what the 1.x SDK always adds.
INPUT_KEYS = frozenset({"prompt", "negative_prompt", "img_url", "audio_url", "template", "extend_prompt", "function"})
PARAMETER_KEYS = frozenset({"resolution", "duration", "prompt_extend", "shot_type", "audio", "watermark", "seed"})


@attrs.frozen(kw_only=True)
class CreateSpec:
    """A create request that passed the body checks, with defaults applied."""

    model: str
    input: dict[str, Any]  # as received, prompts truncated
    parameters: dict[str, Any]  # as received
    ignored: tuple[str, ...]  # unknown keys accepted and ignored (lenient mode)
    img_url: str
    audio_url: str | None
    prompt: str | None
    resolution: str
    duration: int
    prompt_extend: bool
    shot_type: str
    audio: bool
    watermark: bool
    seed: int | None


def _is_int(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    # A JSON `5.0` is an integer value; `5.5` is not.
    return isinstance(value, float) and value.is_integer()


def _bool(parameters: Mapping[str, Any], name: str, default: bool) -> bool:
    value = parameters.get(name, default)
    if not isinstance(value, bool):
        raise ApiError.invalid(f"Input should be a valid boolean: parameters.{name}")
    return value


def _text(source: Mapping[str, Any], name: str, limit: int) -> str | None:
    value = source.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError.invalid(f"Input should be a valid string: input.{name}")
    # Silently truncated, as the service does (reference §3).
    return value[:limit]


def parse_create(body: object, config: EmulatorConfig) -> CreateSpec:
    """Validate a decoded JSON create body, or raise the `ApiError` the service would."""
    if not isinstance(body, dict):
        raise ApiError.invalid()
    model = body.get("model")
    if model is None or model == "":
        raise ApiError(400, "BadRequest.EmptyModel")
    if model != config.model:
        raise ApiError(404, "InvalidParameter", "Model not exist.")

    if "input" not in body or body["input"] is None:
        raise ApiError(400, "BadRequest.EmptyInput")
    source = body["input"]
    if not isinstance(source, dict):
        raise ApiError.invalid("Input should be a valid dictionary: input")
    parameters = body.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise ApiError.invalid("Input should be a valid dictionary: parameters")

    img_url = source.get("img_url")
    if img_url is None or img_url == "":
        raise ApiError.invalid("Field required: input.img_url")
    if not isinstance(img_url, str):
        raise ApiError.invalid("Input should be a valid string: input.img_url")
    # A missing img_url is reported first, even when unknown keys (e.g. `media`) came with it.
    unknown_input = sorted(set(source) - INPUT_KEYS)
    unknown_parameters = sorted(set(parameters) - PARAMETER_KEYS)
    if config.strict_parameters and (unknown_input or unknown_parameters):
        first = f"parameters.{unknown_parameters[0]}" if unknown_parameters else f"input.{unknown_input[0]}"
        raise ApiError.invalid(f"Extra inputs are not permitted: {first}")

    audio_url = source.get("audio_url")
    if audio_url == "":
        audio_url = None
    if audio_url is not None and not isinstance(audio_url, str):
        raise ApiError.invalid("Input should be a valid string: input.audio_url")
    for name in ("template", "function"):
        if source.get(name) is not None and not isinstance(source[name], str):
            raise ApiError.invalid(f"Input should be a valid string: input.{name}")
    if source.get("extend_prompt") is not None and not isinstance(source["extend_prompt"], bool):
        raise ApiError.invalid("Input should be a valid boolean: input.extend_prompt")

    prompt = _text(source, "prompt", config.max_prompt_chars)
    negative = _text(source, "negative_prompt", config.max_negative_prompt_chars)
    received = dict(source)
    if prompt is not None:
        received["prompt"] = prompt
    if negative is not None:
        received["negative_prompt"] = negative

    resolution = parameters.get("resolution", "1080P")
    if resolution not in RESOLUTIONS:
        raise ApiError.invalid("Input should be '720P' or '1080P': parameters.resolution")
    duration = parameters.get("duration", 5)
    low, high = DURATION_RANGE
    if not _is_int(duration) or not low <= int(duration) <= high:
        raise ApiError.invalid(f"Input should be an integer from {low} to {high}: parameters.duration")
    seed = parameters.get("seed")
    if seed is not None and (not _is_int(seed) or not 0 <= int(seed) <= SEED_MAX):
        raise ApiError.invalid(f"Input should be an integer from 0 to {SEED_MAX}: parameters.seed")
    prompt_extend = _bool(parameters, "prompt_extend", True)
    audio = _bool(parameters, "audio", True)
    watermark = _bool(parameters, "watermark", False)
    shot_type = parameters.get("shot_type", "single")
    if shot_type not in SHOT_TYPES:
        raise ApiError.invalid("Input should be 'single' or 'multi': parameters.shot_type")
    if shot_type == "multi" and not prompt_extend:
        raise ApiError.invalid("shot_type 'multi' requires prompt_extend to be true: parameters.shot_type")

    return CreateSpec(
        model=model,
        input=received,
        parameters=dict(parameters),
        ignored=tuple([f"input.{k}" for k in unknown_input] + [f"parameters.{k}" for k in unknown_parameters]),
        img_url=img_url,
        audio_url=audio_url,
        prompt=prompt,
        resolution=resolution,
        duration=int(duration),
        prompt_extend=prompt_extend,
        shot_type=shot_type,
        audio=audio,
        watermark=watermark,
        seed=None if seed is None else int(seed),
    )
