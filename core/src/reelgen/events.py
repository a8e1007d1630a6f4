"""Lifecycle and progress events, delivered to `reelgen_event` hooks and `on_event` callbacks."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._converters import plain_dict

__all__ = ["EVENT_KINDS", "Event", "EventKind"]

EventKind = Literal[
    "submitted", "status", "progress", "downloaded", "stored", "cache_hit", "succeeded", "failed", "cancelled"
]
EVENT_KINDS: tuple[str, ...] = (
    "submitted",
    "status",
    "progress",
    "downloaded",
    "stored",
    "cache_hit",
    "succeeded",
    "failed",
    "cancelled",
)


@attrs.frozen(kw_only=True)
class Event:
    """One thing that happened to a generation.

    `data` depends on the kind: `status` has `state` and `raw_status`; `progress` has
    `phase` ("generating" or "downloading") and `fraction`, `bytes`, `total` where known;
    `failed` has `error` (the message) and `error_type`. Never a secret.
    """

    kind: EventKind
    provider: str
    job_id: str | None = None
    at: float = attrs.field(factory=time.time)
    data: Mapping[str, Any] = attrs.field(factory=dict, converter=plain_dict, hash=False)
