"""Lifecycle and progress events, delivered to `reelgen_event` hooks and `on_event` callbacks."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal, get_args

import attrs

from ._converters import plain_dict

__all__ = ["EVENT_KINDS", "Event", "EventKind"]

EventKind = Literal[
    "submitted",
    "status",
    "progress",
    "downloaded",
    "stored",
    "cache_hit",
    "succeeded",
    "failed",
    "cancelled",
    "warning",
    "journaled",
    "attached",
    "waiting",
    "retrying",
    "estimate",
    "delivery_failed",
]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)


@attrs.frozen(kw_only=True)
class Event:
    """One thing that happened to a generation.

    `data` depends on the kind: `status` has `state` and `raw_status`; `progress` has
    `phase` ("generating" or "downloading") and `fraction`, `bytes`, `total` where known;
    `failed` has `error` (the message) and `error_type`; `warning` {message} comes before
    the submit; `journaled` {entry_id}; `attached` {job_id, why: "single-flight" |
    "adopted" | "delivery"}; `waiting` {reason, in_use, limit, message}; `retrying` {step,
    attempt, delay, reason}; `estimate` {amount, currency, basis}; `delivery_failed`
    {error, resume}. Never a secret.
    """

    kind: EventKind
    provider: str
    job_id: str | None = None
    at: float = attrs.field(factory=time.time)
    data: Mapping[str, Any] = attrs.field(factory=dict, converter=plain_dict, hash=False)
