"""The account limiters: exact bounds, fairness, expiry, cancellation, and several event loops."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from reelgen_bailian_wan.limits import RATE_MARGIN, ConcurrencyLimiter, RateLimiter


async def test_never_more_than_the_limit_and_first_come_first_served() -> None:
    limiter = ConcurrencyLimiter(2)
    held, peak, order = 0, 0, []

    async def worker(number: int) -> None:
        nonlocal held, peak
        lease = await limiter.acquire(ttl=60)
        order.append(number)
        held += 1
        peak = max(peak, held)
        await asyncio.sleep(0.01)
        held -= 1
        limiter.release(lease)

    await asyncio.gather(*(worker(n) for n in range(8)))
    assert peak == 2
    assert order == list(range(8))
    assert limiter.in_use == 0


async def test_a_cancelled_waiter_does_not_keep_a_slot() -> None:
    limiter = ConcurrencyLimiter(1)
    first = await limiter.acquire(ttl=60)
    waiting = asyncio.ensure_future(limiter.acquire(ttl=60))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    limiter.release(first)
    again = await asyncio.wait_for(limiter.acquire(ttl=60), 1)
    assert limiter.in_use == 1
    limiter.release(again)


async def test_an_expired_lease_frees_its_slot_for_a_waiter() -> None:
    limiter = ConcurrencyLimiter(1)
    await limiter.acquire(ttl=0.1)  # never released: an abandoned job
    started = time.monotonic()
    lease = await asyncio.wait_for(limiter.acquire(ttl=60), 30)
    # Not before the lease ran out (a lower bound holds on any machine, however loaded).
    assert time.monotonic() - started >= 0.08
    limiter.release(lease)


async def test_leases_are_named_extended_and_released_by_task_id() -> None:
    now = [0.0]
    limiter = ConcurrencyLimiter(1, clock=lambda: now[0])
    lease = await limiter.acquire(ttl=1)
    limiter.bind(lease, "task-1", ttl=10)
    now[0] = 9
    limiter.extend("task-1", ttl=10)
    now[0] = 15
    assert limiter.in_use == 1
    assert limiter.release_key("task-1") is True
    assert limiter.release_key("task-1") is False
    assert limiter.in_use == 0


def test_one_limiter_serves_several_event_loops_at_once() -> None:
    limiter = ConcurrencyLimiter(1)
    inside, overlaps, done = [0], [0], []
    lock = threading.Lock()

    async def use() -> None:
        for _ in range(10):
            lease = await limiter.acquire(ttl=60)
            with lock:
                inside[0] += 1
                overlaps[0] += inside[0] > 1
            await asyncio.sleep(0.002)
            with lock:
                inside[0] -= 1
            limiter.release(lease)
        done.append(True)

    threads = [threading.Thread(target=asyncio.run, args=(use(),)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert done == [True, True, True] and overlaps == [0]


async def test_any_window_holds_at_most_rate_arrivals_whatever_the_calls_take() -> None:
    limiter = RateLimiter(5)
    starts: list[float] = []
    ends: list[float] = []

    async def call(latency: float) -> None:
        token = await limiter.acquire()
        starts.append(time.monotonic())
        await asyncio.sleep(latency)
        ends.append(time.monotonic())
        limiter.finish(token)

    # Slow calls first (as if the first ones waited on the SDK's import), then fast ones.
    await asyncio.gather(*(call(0.3 if n < 3 else 0.0) for n in range(12)))
    starts.sort()
    ends.sort()
    # The server sees a call between its start and its end: any 6 arrivals span a window.
    for i in range(len(starts) - 5):
        assert starts[i + 5] - ends[i] >= limiter.window - 0.005
    assert limiter.window == pytest.approx(RATE_MARGIN)


async def test_pause_holds_everyone_back() -> None:
    limiter = RateLimiter(1000)
    limiter.pause(0.2)
    started = time.monotonic()
    limiter.finish(await limiter.acquire())
    assert time.monotonic() - started >= 0.19


def test_fractional_rates_keep_their_average() -> None:
    limiter = RateLimiter(2.5)
    assert limiter.capacity == 2 and limiter.window == pytest.approx(0.8 * RATE_MARGIN)
