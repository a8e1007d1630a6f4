"""Daemon threads that run blocking work: one call (`spawn`, `run_blocking`) or a bounded pool.

Why not `concurrent.futures.ThreadPoolExecutor` or `asyncio.to_thread`: their worker
threads are joined at interpreter exit, so one call stuck in a read (an SDK call with no
timeout) or a long render would hold the process open after the caller gave up. Work
here runs on daemon threads; whoever waits can stop waiting (a timeout, a cancel) while
the thread ends on its own. `asyncio.to_thread` also binds its executor to one event
loop, and the sync face runs a loop per call.

Used by the bailian_wan provider's SDK calls, the preview provider's renders and the
DashScope emulator's render pool. Private to reelgen and its bundled plugins.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

__all__ = ["DaemonPool", "run_blocking", "spawn"]

T = TypeVar("T")


def _run_into(future: Future[T], func: Callable[[], T]) -> None:
    """Run `func` into `future`, unless the future was cancelled before it started."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = func()
    except BaseException as exc:  # noqa: BLE001 - handed to whoever waits, whatever it is
        future.set_exception(exc)
    else:
        future.set_result(result)


def spawn(func: Callable[[], T], *, name: str) -> Future[T]:
    """Start `func()` on a new daemon thread named `name`; its outcome is the future's."""
    future: Future[T] = Future()
    threading.Thread(target=_run_into, args=(future, func), name=name, daemon=True).start()
    return future


async def run_blocking(func: Callable[[], T], *, timeout: float | None = None, name: str = "blocking") -> T:
    """Await `func()` run on its own daemon thread (`reelgen-NAME`); `asyncio.TimeoutError`
    after `timeout` seconds.

    Giving up (timeout or cancellation) leaves the thread to finish in the background.
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[T] = loop.create_future()

    def copy(done: Future[T]) -> None:
        if waiter.done():
            return
        error = done.exception()
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(done.result())

    def settle(done: Future[T]) -> None:  # on the worker thread
        try:
            loop.call_soon_threadsafe(copy, done)
        except RuntimeError:  # the loop closed while we worked: nobody is waiting
            pass

    spawn(func, name=f"reelgen-{name}").add_done_callback(settle)
    return await asyncio.wait_for(waiter, timeout)


class DaemonPool(Generic[T]):
    """At most `workers` daemon threads working through submitted calls in order.

    Threads start when work arrives and end when none is left, so an idle pool holds no
    thread (a provider instance per test costs nothing). A future cancelled while queued
    never runs; a running call cannot be interrupted (pass it a stop flag for that).
    """

    def __init__(self, workers: int, *, name: str) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        self.workers = workers
        self.name = name
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[Future[T], Callable[[], T]]] = collections.deque()
        self._threads = 0
        self._started = 0

    def submit(self, func: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._queue.append((future, func))
            if self._threads >= self.workers:
                return future
            self._threads += 1
            self._started += 1
            name = f"{self.name}-{self._started}"
        threading.Thread(target=self._work, name=name, daemon=True).start()
        return future

    @property
    def threads(self) -> int:
        """Worker threads alive now."""
        with self._lock:
            return self._threads

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._threads -= 1
                    return
                future, func = self._queue.popleft()
            _run_into(future, func)
