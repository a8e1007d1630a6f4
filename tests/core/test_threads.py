"""reelgen.threads: daemon threads for blocking work, one call at a time or a bounded pool."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from concurrent.futures import CancelledError

import pytest

from reelgen.threads import DaemonPool, run_blocking, spawn


def _wait_until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_spawn_runs_on_a_named_daemon_thread() -> None:
    future = spawn(lambda: (threading.current_thread().name, threading.current_thread().daemon), name="x-1")
    assert future.result(timeout=30) == ("x-1", True)
    failing = spawn(lambda: 1 / 0, name="x-2")
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=30)


def test_run_blocking_hands_back_results_and_errors() -> None:
    async def main() -> None:
        assert await run_blocking(lambda: threading.current_thread().name, name="sdk") == "reelgen-sdk"

        def boom() -> None:
            raise KeyError("k")

        with pytest.raises(KeyError):
            await run_blocking(boom)

    asyncio.run(main())


def test_run_blocking_gives_up_on_timeout_and_the_thread_finishes_alone() -> None:
    release = threading.Event()
    finished = threading.Event()

    def stuck() -> None:
        release.wait(30)
        finished.set()

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await run_blocking(stuck, timeout=0.05)

    asyncio.run(main())  # the loop is closed by now: settling must not raise in the thread
    release.set()
    assert finished.wait(30)


def test_the_pool_runs_at_most_its_workers_at_once_in_order() -> None:
    pool: DaemonPool[int] = DaemonPool(2, name="pool")
    gate = threading.Event()
    running: list[int] = []
    lock = threading.Lock()
    peak = [0]

    def job(n: int) -> int:
        with lock:
            running.append(n)
            peak[0] = max(peak[0], len(running))
        gate.wait(30)
        with lock:
            running.remove(n)
        return n

    futures = [pool.submit(lambda n=n: job(n)) for n in range(6)]  # type: ignore[misc]
    _wait_until(lambda: len(running) == 2)
    assert sorted(running) == [0, 1] and pool.threads == 2
    gate.set()
    assert [f.result(timeout=30) for f in futures] == list(range(6))
    assert peak[0] == 2
    # Idle threads end: an idle pool holds none, and new work starts them again.
    _wait_until(lambda: pool.threads == 0)
    assert pool.submit(lambda: 7).result(timeout=30) == 7


def test_a_call_cancelled_while_queued_never_runs() -> None:
    pool: DaemonPool[str] = DaemonPool(1, name="pool")
    gate = threading.Event()
    ran: list[str] = []
    first = pool.submit(lambda: (gate.wait(30), ran.append("first"), "first")[2])
    second = pool.submit(lambda: (ran.append("second"), "second")[1])
    assert second.cancel()
    gate.set()
    assert first.result(timeout=30) == "first"
    with pytest.raises(CancelledError):
        second.result(timeout=30)
    _wait_until(lambda: pool.threads == 0)
    assert ran == ["first"]


def test_the_pool_checks_its_size() -> None:
    with pytest.raises(ValueError, match="workers"):
        DaemonPool(0, name="pool")


@pytest.mark.parametrize(
    "start",
    [
        "spawn(lambda: threading.Event().wait(), name='stuck')",
        "DaemonPool(1, name='stuck').submit(lambda: threading.Event().wait())",
        (
            "try:\n    asyncio.run(run_blocking(lambda: threading.Event().wait(), timeout=0.05))\n"
            "except asyncio.TimeoutError:\n    pass"
        ),
    ],
)
def test_stuck_work_never_holds_the_interpreter_open(start: str) -> None:
    code = (
        "import asyncio, threading\n"
        "from reelgen.threads import DaemonPool, run_blocking, spawn\n"
        f"{start}\n"
        "print('exiting')\n"
    )
    # A generous bound that only catches a hang (a joined worker would wait forever).
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "exiting"
