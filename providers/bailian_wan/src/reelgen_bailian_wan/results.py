"""A SUCCEEDED reply -> `ProviderOutput`: the video URL, when it expires, and what was billed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlparse

from reelgen.provider import ProviderOutput

__all__ = ["URL_TTL", "expires_at", "normalize_usage", "succeeded_output"]

#: `output.video_url` is valid for 24 hours (reference section 4).
URL_TTL = 86_400.0
#: SDK-injected defaults of wan2.1-era fields (`VideoSynthesisUsage`), not sent by the service.
_SDK_DEFAULTS = {"video_duration": 0, "video_ratio": ""}
_SECONDS = ("duration", "input_video_duration", "output_video_duration", "video_duration")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def expires_at(video_url: str, finished_at: float) -> str:
    """When the URL stops working, ISO-8601 UTC.

    A signed OSS URL says so itself (`Expires=<epoch>`); otherwise the documented 24 h
    from the task's end.
    """
    query = parse_qs(urlparse(video_url).query)
    for value in query.get("Expires", []):
        try:
            return _iso(float(value))
        except ValueError:
            break
    return _iso(finished_at + URL_TTL)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def normalize_usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """The service's `usage`, typed consistently: seconds as floats, counts and `SR` as ints.

    Java examples show `"SR": "720"` and float durations, Python ones ints; `resolution`
    ("720P") is added from `SR` for readers who think in tiers.
    """
    normalized: dict[str, Any] = {}
    for key, value in dict(usage or {}).items():
        if key in _SDK_DEFAULTS and value == _SDK_DEFAULTS[key]:
            continue
        if key in _SECONDS:
            number = _number(value)
            normalized[key] = number if number is not None else value
        elif key in ("video_count", "SR"):
            number = _number(value)
            normalized[key] = int(number) if number is not None and number.is_integer() else value
        elif key == "audio":
            normalized[key] = value if isinstance(value, bool) else str(value).lower() == "true"
        else:
            normalized[key] = value
    if isinstance(normalized.get("SR"), int):
        normalized["resolution"] = f"{normalized['SR']}P"
    return normalized


def succeeded_output(
    output: Mapping[str, Any],
    usage: Mapping[str, Any] | None,
    *,
    finished_at: float,
    seed: int | None,
    tier: str | None,
    audio: bool | None,
) -> ProviderOutput:
    """The `ProviderOutput` of a SUCCEEDED task, with warnings where the bill shows a change."""
    video_url = str(output["video_url"])
    billed = normalize_usage(usage)
    warnings: list[str] = []
    if tier is not None and billed.get("resolution") not in (None, tier):
        warnings.append(f"resolution: {tier} was requested but the service billed {billed['resolution']}")
    if audio is not None and isinstance(billed.get("audio"), bool) and billed["audio"] != audio:
        wanted, got = str(audio).lower(), str(billed["audio"]).lower()
        warnings.append(f"audio: audio={wanted} was requested but the service billed audio={got}")
    echoed = output.get("orig_prompt")
    return ProviderOutput(
        source_url=video_url,
        prompt=echoed if isinstance(echoed, str) else None,
        expires_at=expires_at(video_url, finished_at),
        usage=billed,
        seed=seed,
        warnings=tuple(warnings),
    )
