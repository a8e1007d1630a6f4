"""SIGINT, SIGTERM and SIGHUP for long CLI commands: each one cancels the running generation.

`run_interruptible(coro)` runs a coroutine in a fresh event loop. The first of these
signals cancels it; the generation's own clean-up then asks the provider to cancel the
remote job (where it can) before the coroutine ends, and `Interrupted` is raised with the
signal's exit code (128 + the signal number, as shells report a process killed by it):

| signal | exit code | usually from |
|---|---|---|
| SIGINT | 130 | Ctrl-C |
| SIGTERM | 143 | `kill`, systemd, Kubernetes, a CI runner timing out |
| SIGHUP | 129 | the terminal closed, an SSH session dropped |

A signal the process inherited as *ignored* (`nohup`, a shell's background job ignoring
SIGINT) stays ignored: the user asked for the command to outlive it.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["EXIT_CODES", "HANDLED", "Interrupted", "exit_code_for", "run_interruptible"]

T = TypeVar("T")

HANDLED: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_CODES: dict[signal.Signals, int] = {sig: 128 + int(sig) for sig in HANDLED}


def exit_code_for(signum: int) -> int:
    """The exit code reelgen uses after signal `signum` (128 + its number)."""
    return 128 + int(signum)


class Interrupted(Exception):
    """The command stopped because of a signal; `exit_code` is 128 + its number."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.name = signal.Signals(signum).name
        self.exit_code = exit_code_for(signum)
        super().__init__(f"interrupted by {self.name}")


async def _cancel_on_signals(coro: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.get_running_loop()
    work = asyncio.ensure_future(coro)
    received: list[int] = []

    def on_signal(signum: int) -> None:
        # A second signal cancels again, which abandons the wait for the remote cancel.
        received.append(signum)
        work.cancel()

    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in HANDLED:
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue
            loop.add_signal_handler(sig, on_signal, int(sig))
            installed.append(sig)
    try:
        return await work
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0]) from None
        raise
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def run_interruptible(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to its end; raise `Interrupted` if a handled signal stopped it."""
    try:
        return asyncio.run(_cancel_on_signals(coro))
    except KeyboardInterrupt:
        # SIGINT before the handler was installed (or outside the main thread).
        raise Interrupted(signal.SIGINT) from None
