"""Built-in account governor: SQLite leases and `limits` rate windows, shared on one machine.

Registered `trylast` on `reelgen_governor`, so a plugin's governor (e.g. Redis, shared by
several machines) answers first. Where its state lives:

* jobs enabled (`jobs.url` is a SQLite file): `governor.db` in the same directory, shared
  by every process on the machine that uses that journal;
* jobs disabled: a process-local SQLite database in memory (the limits still hold for
  every thread and event loop of the process, not beyond it).

Concurrency permits are leases (`_leases.LeaseTable`). Rate windows use the `limits`
library's moving-window strategy (whole-second windows, its granularity) over any `limits`
storage that supports it: ours in SQLite (`_sqlite_window`, a file or process memory), and
a shared backend can hand `RateWindows` a `limits` Redis storage unchanged.

A window counts a call from when its token is taken, and `Token.done()` moves it to the
call's end. That matters: the service counts arrivals, and an arrival lies anywhere
between start and end. Counted by start alone, calls that start a second apart can
arrive together (a slow first call under load, then fast ones: measured, 3 self-caused
429s in a burst of 20 generations); counted by end, any `limit + 1` consecutive arrivals
span the window. Our storage moves the entry (`restamp_entry`); a storage without that
method gets a second entry at the end instead, for calls that took longer than
`_SLOW_CALL` of the window (exact, at the cost of counting slow calls twice for a while).
A call still in flight after a whole window stops counting until it ends (rare: that
is a call slower than the window itself).

Waits poll (the state is in a file that other processes change): every 50 ms at first,
backing off to 200 ms (a plain read; only a caller that may succeed
takes the write lock), never past the next lease expiry or the caller's deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..hookspecs import hookimpl
from ._leases import ENTRY_PREFIX

if TYPE_CHECKING:
    from limits import RateLimitItem
    from limits.storage import Storage
    from limits.strategies import MovingWindowRateLimiter

    from ..config import Config
    from ..governor import Account, Limits, OnWait, ThrottleKind, Wait, WaitReason
    from ._leases import LeaseTable

__all__ = ["LeaseGovernor", "RateWindows", "governor_for", "rate_item"]

log = logging.getLogger("reelgen.governor")

_FIRST_POLL = 0.05
#: Fraction of the window after which a storage without `restamp_entry` gets an end entry.
_SLOW_CALL = 0.05
_MAX_POLL = 0.2
_instances: dict[str, LeaseGovernor] = {}
_instances_lock = threading.Lock()
_memory_ids = itertools.count(1)


def rate_item(rate: float) -> RateLimitItem:
    """`limits`' item for `rate` calls per second: the best `amount per N seconds` not above
    it, with the shortest window (2.5/s -> 5 per 2 s; 20/s -> 20 per 1 s; 0.3/s -> 3 per 10 s)."""
    from limits import RateLimitItemPerSecond

    best: tuple[float, int, int] | None = None
    for seconds in range(1, 61):
        amount = math.floor(rate * seconds + 1e-9)
        if amount >= 1 and (best is None or amount / seconds > best[0] + 1e-12):
            best = (amount / seconds, amount, seconds)
    if best is None:  # slower than one call a minute
        return RateLimitItemPerSecond(1, math.ceil(1 / rate))
    return RateLimitItemPerSecond(best[1], best[2])


class RateWindows:
    """Moving windows, one per account and kind, over any `limits` moving-window storage."""

    def __init__(self, storage: Storage) -> None:
        from limits.strategies import MovingWindowRateLimiter

        self.storage = storage
        self._strategy: MovingWindowRateLimiter = MovingWindowRateLimiter(storage)

    def try_hit(self, account: str, kind: str, rate: float) -> tuple[bool, int, int, float]:
        """(taken, calls in the window, window limit, when the window next has room)."""
        item = rate_item(rate)
        if self._strategy.hit(item, account, kind):
            return True, 0, item.amount, 0.0
        reset_at, remaining = self._strategy.get_window_stats(item, account, kind)
        return False, item.amount - remaining, item.amount, reset_at

    def finish(self, account: str, kind: str, rate: float, started_after: float) -> None:
        """The call whose token was taken at or after `started_after` has ended: count it from now."""
        item = rate_item(rate)
        key = item.key_for(account, kind)
        now = time.time()
        restamp = getattr(self.storage, "restamp_entry", None)
        if restamp is not None:
            restamp(key, started_after, now)
        elif now - started_after > _SLOW_CALL * item.get_expiry():
            # Any limit admits it: the call has happened, this only records when.
            self.storage.acquire_entry(key, 2**31, item.get_expiry())  # type: ignore[attr-defined]


class _NoToken:
    """The token when the rate is unlimited."""

    async def done(self) -> None:
        return None


class _WindowToken:
    def __init__(self, windows: RateWindows, account: str, kind: str, rate: float, started_after: float) -> None:
        self._args = (account, kind, rate, started_after)
        self._windows = windows
        self._done = False

    async def done(self) -> None:
        if self._done:
            return
        self._done = True
        await _uncancellable(self._windows.finish, *self._args)


class _NoPermit:
    """The permit for an account without a concurrency limit."""

    token = ""

    async def bind(self, job_id: str) -> None:
        return None

    async def renew(self) -> None:
        return None

    async def release(self) -> None:
        return None


class _LeasePermit:
    def __init__(self, governor: LeaseGovernor, account: Account, token: str) -> None:
        self.token = token
        self._governor = governor
        self._account = account
        self._released = False

    def __repr__(self) -> str:
        return f"<permit {self.token[:8]} for {self._account.key}>"

    async def bind(self, job_id: str) -> None:
        if not await asyncio.to_thread(self._governor.leases.bind, self.token, job_id, self._governor.lease):
            log.warning("the %s permit for job %s had already expired when it was bound", self._account.key, job_id)

    async def renew(self) -> None:
        if self._released:
            return
        if not await asyncio.to_thread(self._governor.leases.renew, self.token, self._governor.lease):
            log.warning("the %s permit %s expired before it was renewed", self._account.key, self.token[:8])

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        await _uncancellable(self._governor.leases.release, self.token)


async def _uncancellable(func: Any, *args: Any) -> Any:
    """Run a quick blocking call in a thread to the end, even if the caller is cancelled meanwhile."""
    future = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


def _timeout(account: Account, what: str, wait: Wait, *, before_create: bool) -> Exception:
    from ..errors import GenerationTimeout

    seen = wait.describe().split(": ", 1)[-1] if wait.in_use is not None else "full"
    after = "; no task was created" if before_create else ""
    return GenerationTimeout(f"the deadline passed while waiting for {what} on {account.key} ({seen}){after}")


class LeaseGovernor:
    """The built-in `reelgen.governor.Governor`: leases in a `LeaseTable`, windows in `RateWindows`."""

    def __init__(self, leases: LeaseTable, windows: RateWindows, *, lease: float | None = None) -> None:
        from ..governor import LEASE
        from ._leases import holder_name

        self.leases = leases
        self.windows = windows
        self.lease = LEASE if lease is None else lease
        self.holder = holder_name()

    def __repr__(self) -> str:
        return f"LeaseGovernor({self.leases.target!r}, lease={self.lease:g})"

    async def acquire(
        self,
        account: Account,
        limits: Limits,
        *,
        deadline_at: float,
        on_wait: OnWait | None = None,
        entry: str | None = None,
    ) -> _LeasePermit | _NoPermit:
        from ..governor import Wait

        limit = limits.permits(account)
        if limit is None:
            return _NoPermit()
        reported: Wait | None = None
        pause = _FIRST_POLL
        while True:
            limit = limits.permits(account) or limit  # fewer once the account refused a task created ahead
            grant = await self._try_acquire(account, limit, None if entry is None else ENTRY_PREFIX + entry)
            if grant.token is not None:
                return _LeasePermit(self, account, grant.token)
            wait = Wait(reason="slot", in_use=grant.in_use, limit=limit)
            remaining = deadline_at - time.monotonic()
            if remaining <= 0:
                raise _timeout(account, "a concurrency slot", wait, before_create=True)
            if on_wait is not None and wait != reported:
                on_wait(wait)
            reported = wait
            until_expiry = grant.next_expiry - time.time() if grant.next_expiry is not None else pause
            await asyncio.sleep(max(0.001, min(pause, until_expiry, remaining)))
            pause = min(pause * 2, _MAX_POLL)

    async def _try_acquire(self, account: Account, limit: int, name: str | None) -> Any:
        # A slot taken in the thread after the caller was cancelled is given straight back.
        state = {"abandoned": False}
        guard = threading.Lock()

        def attempt() -> Any:
            grant = self.leases.try_acquire(account.key, limit, self.lease, self.holder, name)
            with guard:
                if state["abandoned"] and grant.token is not None:
                    self.leases.release(grant.token)
            return grant

        future = asyncio.ensure_future(asyncio.to_thread(attempt))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with guard:
                state["abandoned"] = True
                granted = future.done() and not future.cancelled() and future.exception() is None
            if granted and future.result().token is not None:
                self.leases.release(future.result().token)
            raise

    async def throttle(
        self,
        account: Account,
        limits: Limits,
        kind: ThrottleKind,
        *,
        deadline_at: float,
        on_wait: OnWait | None = None,
    ) -> _WindowToken | _NoToken:
        from ..governor import Wait

        rate = limits.rate(kind)
        if rate is None:
            return _NoToken()
        reason: WaitReason = "submit_rate" if kind == "submit" else "query_rate"
        reported: Wait | None = None
        while True:
            started_after = time.time()
            taken, in_window, limit, reset_at = await asyncio.to_thread(self.windows.try_hit, account.key, kind, rate)
            if taken:
                return _WindowToken(self.windows, account.key, kind, rate, started_after)
            wait = Wait(reason=reason, in_use=in_window, limit=limit)
            remaining = deadline_at - time.monotonic()
            if remaining <= 0:
                raise _timeout(account, f"a {kind} token", wait, before_create=kind == "submit")
            if on_wait is not None and wait != reported:
                on_wait(wait)
            reported = wait
            await asyncio.sleep(max(0.001, min(reset_at - time.time(), remaining, _MAX_POLL)))

    async def renew_job(self, account: Account, job_id: str, *, entry: str | None = None) -> None:
        name = None if entry is None else ENTRY_PREFIX + entry
        await asyncio.to_thread(self.leases.renew_job, account.key, job_id, self.lease, self.holder, name)

    async def release_job(self, account: Account, job_id: str) -> None:
        freed = await _uncancellable(self.leases.release_job, account.key, job_id)
        if freed:
            log.debug("released the %s permit of job %s", account.key, job_id)

    async def in_use(self, account: Account) -> int:
        return int(await asyncio.to_thread(self.leases.in_use, account.key))

    async def aclose(self) -> None:
        # Connections reopen on the next call; the permits stay (their jobs may still run).
        # A process-local governor keeps its connection: closing would forget its state.
        if not self.leases.target.startswith("file:"):
            self.leases.close()
            close = getattr(self.windows.storage, "close", None)
            if close is not None:
                close()


def governor_path(config: Config) -> Path | None:
    """The built-in governor's file for `config` (None: jobs are disabled, state is in memory)."""
    from ..config import is_disabled

    url = config.jobs.url
    if is_disabled(url):
        return None
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else url
    return Path(path).expanduser().parent / "governor.db"


def governor_for(path: Path | None, *, lease: float | None = None) -> LeaseGovernor:
    """A new governor on `path` (None: process-local, in memory)."""
    from ._leases import LeaseTable
    from ._sqlite_window import SqliteWindowStorage

    if path is None:
        # One database each: a shared-cache memory database locks whole tables and does not
        # wait (SQLITE_LOCKED), so each stays behind its own connection and thread lock.
        number = next(_memory_ids)
        leases = LeaseTable(f"file:reelgen-governor-{number}-leases?mode=memory&cache=shared", uri=True)
        windows = SqliteWindowStorage(f"file:reelgen-governor-{number}-windows?mode=memory&cache=shared")
        return LeaseGovernor(leases, RateWindows(windows), lease=lease)
    path.parent.mkdir(parents=True, exist_ok=True)
    return LeaseGovernor(LeaseTable(str(path)), RateWindows(SqliteWindowStorage(str(path))), lease=lease)


@hookimpl(trylast=True)
def reelgen_governor(config: Config) -> LeaseGovernor:
    path = governor_path(config)
    key = str(path) if path is not None else ":memory:"
    with _instances_lock:
        governor = _instances.get(key)
        if governor is None:
            governor = _instances[key] = governor_for(path)
        return governor
