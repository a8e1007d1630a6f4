"""Per-account rate limits: a sliding one-second window per limit."""

from __future__ import annotations

import collections
import threading
import time

__all__ = ["RateLimiter"]


class RateLimiter:
    """Allows at most `rate` events in any one-second window (None: unlimited).

    Only admitted events count, so a client that keeps retrying at a steady pace
    gets through as soon as the window has room.
    """

    def __init__(self, rate: float | None, window: float = 1.0) -> None:
        self.rate = rate
        self.window = window
        self._events: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def admit(self) -> bool:
        if self.rate is None:
            return True
        now = time.monotonic()
        with self._lock:
            while self._events and now - self._events[0] >= self.window:
                self._events.popleft()
            if len(self._events) >= self.rate:
                return False
            self._events.append(now)
            return True

    def reset(self) -> None:
        with self._lock:
            self._events.clear()
