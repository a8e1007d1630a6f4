"""Account limits, kept on our side so our own bursts never cost a 429 or a queue slot.

DashScope limits a main account to 5 concurrent video tasks, 5 task creations per
second and 20 task queries per second (reference section 6). A provider instance holds:

* `ConcurrencyLimiter`: at most `max_concurrency` tasks in flight (from just before the
  create call until the task is seen finished, cancelled or abandoned);
* two `RateLimiter`s: creations, and queries plus cancels.

Both are used from several event loops over the life of one instance (the sync
`reelgen.generate` runs `asyncio.run` per call and the core keeps provider instances
per process), so neither binds to a loop: state lives behind a `threading.Lock`, and
a waiter is woken on its own loop with `call_soon_threadsafe`.

The limits are per instance, while the service counts per account: two processes on
one account share the service's limits but not these (the core shares one instance
per configuration within a process).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

import attrs

__all__ = ["ConcurrencyLimiter", "Lease", "RateLimiter"]

#: Margin on the rate limiter's window, for clock differences between us and the service.
RATE_MARGIN = 1.05


@attrs.define(eq=False)
class Lease:
    """One concurrency slot. `key` names it once the task exists (its task id)."""

    number: int
    expires_at: float
    key: str | None = None


class ConcurrencyLimiter:
    """At most `limit` leases at once, first come first served, across threads and loops.

    A lease ends when released, or at `expires_at` (so a task nobody polls any more,
    e.g. after the caller's deadline, frees its slot once it must have finished).
    """

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._held: dict[int, Lease] = {}
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[Lease], float]] = deque()
        self._numbers = itertools.count(1)

    @property
    def in_use(self) -> int:
        with self._lock:
            self._expire_locked()
            return len(self._held)

    async def acquire(self, ttl: float) -> Lease:
        """Wait for a slot; the lease expires after `ttl` seconds unless extended."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._expire_locked()
            if len(self._held) < self.limit and not self._waiters:
                return self._grant_locked(ttl)
            future: asyncio.Future[Lease] = loop.create_future()
            entry = (loop, future, ttl)
            self._waiters.append(entry)
        try:
            while True:
                try:
                    return await asyncio.wait_for(asyncio.shield(future), timeout=self._until_expiry())
                except asyncio.TimeoutError:
                    with self._lock:
                        self._expire_locked()
        except BaseException:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)
            if future.done() and not future.cancelled():
                self.release(future.result())
            else:
                future.cancel()
            raise

    def bind(self, lease: Lease, key: str, ttl: float) -> None:
        """Name the lease after the task it now covers, and set its expiry."""
        with self._lock:
            lease.key = key
            lease.expires_at = self._clock() + ttl

    def extend(self, key: str, ttl: float) -> None:
        """Push back the expiry of the lease named `key` (a poll saw the task still running)."""
        with self._lock:
            for lease in self._held.values():
                if lease.key == key:
                    lease.expires_at = max(lease.expires_at, self._clock() + ttl)

    def release(self, lease: Lease) -> None:
        with self._lock:
            if self._held.pop(lease.number, None) is not None:
                self._hand_over_locked()

    def release_key(self, key: str) -> bool:
        """Release the lease named `key`; False if there was none (e.g. a resumed job)."""
        with self._lock:
            for number, lease in list(self._held.items()):
                if lease.key == key:
                    del self._held[number]
                    self._hand_over_locked()
                    return True
            return False

    # -- internals (call with the lock held) ------------------------------------------

    def _grant_locked(self, ttl: float) -> Lease:
        lease = Lease(number=next(self._numbers), expires_at=self._clock() + ttl)
        self._held[lease.number] = lease
        return lease

    def _expire_locked(self) -> None:
        now = self._clock()
        for number in [n for n, lease in self._held.items() if lease.expires_at <= now]:
            del self._held[number]
        self._hand_over_locked()

    def _hand_over_locked(self) -> None:
        while self._waiters and len(self._held) < self.limit:
            loop, future, ttl = self._waiters.popleft()
            lease = self._grant_locked(ttl)
            try:
                loop.call_soon_threadsafe(self._deliver, future, lease)
            except RuntimeError:  # that loop is closed: its waiter is gone
                del self._held[lease.number]

    def _deliver(self, future: asyncio.Future[Lease], lease: Lease) -> None:
        # Runs on the waiter's loop. A waiter cancelled in the meantime gives the slot back.
        if future.done():
            self.release(lease)
        else:
            future.set_result(lease)

    def _until_expiry(self) -> float | None:
        with self._lock:
            if not self._held:
                return None
            return max(0.01, min(lease.expires_at for lease in self._held.values()) - self._clock())


class RateLimiter:
    """At most `rate` calls whose arrival at the server can fall in any one-second window.

    The service counts arrivals in a sliding window; we only know that a call arrived
    somewhere between its start and its end. So a call may start only when fewer than
    `capacity` calls are in flight or ended less than `window` seconds ago: then any
    `capacity + 1` consecutive arrivals span at least `window` seconds, whatever the
    network or thread scheduling did in between (spacing calls at their *start* does
    not survive a burst of sends delayed by, say, the SDK's first import).

    Callers take a token with `acquire()` and hand it back with `finish()` when the call
    has returned, from whichever thread ran it. Waiting is `asyncio.sleep`, so any loop
    can wait; the state is behind a `threading.Lock`.
    """

    #: How often a caller blocked only by calls still in flight looks again.
    _RECHECK = 0.01

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = max(1, int(rate))
        self.window = self.capacity / rate * RATE_MARGIN
        self._clock = clock
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        #: token -> end time (None while in flight), for calls that still count.
        self._calls: dict[int, float | None] = {}
        self._blocked_until = 0.0

    def _try_acquire(self) -> tuple[int | None, float]:
        """A token, or None and how long to wait before trying again."""
        with self._lock:
            now = self._clock()
            for token, end in list(self._calls.items()):
                if end is not None and now - end >= self.window:
                    del self._calls[token]
            if now < self._blocked_until:
                return None, self._blocked_until - now
            if len(self._calls) < self.capacity:
                token = next(self._numbers)
                self._calls[token] = None
                return token, 0.0
            ended = [end for end in self._calls.values() if end is not None]
            wait = min(ended) + self.window - now if ended else self._RECHECK
            return None, max(min(wait, self._RECHECK * 10), 0.001)

    async def acquire(self) -> int:
        while True:
            token, wait = self._try_acquire()
            if token is not None:
                return token
            await asyncio.sleep(wait)

    def finish(self, token: int) -> None:
        """The call holding `token` returned (or never started)."""
        with self._lock:
            if token in self._calls:
                self._calls[token] = self._clock()

    def pause(self, seconds: float) -> None:
        """Hold every caller back for `seconds` (the service said we are too fast)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._clock() + seconds)
