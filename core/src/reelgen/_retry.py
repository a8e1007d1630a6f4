"""Backoff with full jitter, for retrying what is safe to retry."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, *, base: float = 1.0, cap: float = 30.0, hint: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1-based).

    Full jitter (AWS architecture blog): uniform in [0, min(cap, base * 2**attempt)], so
    many clients throttled at once do not come back in lockstep. A server's `Retry-After`
    hint is a floor.
    """
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, hint or 0.0)
