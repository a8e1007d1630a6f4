"""Run a blocking SDK call without tying it to an event loop or blocking interpreter exit.

`asyncio.to_thread` would do, except that its executor belongs to one loop (the core runs
one loop per sync call) and its threads are joined at exit: an SDK call stuck in a read
(the SDK's cancel has no timeout at all) would hold the process open. Each call gets
its own daemon thread instead; the awaiting side can stop waiting (`timeout`,
cancellation) while the thread finishes in the background.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["run_blocking"]

T = TypeVar("T")


async def run_blocking(func: Callable[[], T], *, timeout: float | None = None, name: str = "dashscope") -> T:
    """Await `func()` run in a daemon thread; `asyncio.TimeoutError` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result = func()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side, whatever it is
            outcome: tuple[T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop closed while we worked: nobody is waiting
            pass

    threading.Thread(target=work, name=f"reelgen-{name}", daemon=True).start()
    return await asyncio.wait_for(future, timeout)
