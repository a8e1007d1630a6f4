"""Every call the core makes to a plugin hook goes through here, through pluggy's own calling.

pluggy then applies `firstresult`, `tryfirst`/`trylast` and `wrapper=True` exactly as its
documentation says. Hooks run in a worker thread (`asyncio.to_thread`: a cache or a
store may block on I/O), and an implementation may return an awaitable, which is awaited
here ("await me maybe"). For a `firstresult` hook, an async implementation's coroutine
is its answer: pluggy stops there, so an async implementation that may pass should be
written as a plain function returning None, or a coroutine for the answer.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from .plugins import get_plugin_manager

__all__ = ["call_all", "call_first", "emit_event", "schedule"]


async def _settle(value: Any) -> Any:
    while inspect.isawaitable(value):
        value = await value
    return value


def _caller(name: str) -> Any:
    return getattr(get_plugin_manager().hook, name)


async def call_first(name: str, **kwargs: Any) -> Any:
    """Call the firstresult hook `name`; return its (awaited) answer or None."""
    hook = _caller(name)
    result = await asyncio.to_thread(hook, **kwargs)
    return await _settle(result)


async def call_all(name: str, **kwargs: Any) -> list[Any]:
    """Call every implementation of `name`; return their (awaited) results."""
    hook = _caller(name)
    results = await asyncio.to_thread(hook, **kwargs)
    return [await _settle(result) for result in results]


def emit_event(event: Any) -> None:
    """Hand `event` to every `reelgen_event` implementation; observers never break a generation."""
    import logging

    try:
        results = _caller("reelgen_event")(event=event)
    except Exception:
        logging.getLogger("reelgen.plugins").exception("a reelgen_event observer raised")
        return
    for outcome in results:
        schedule(outcome)


def schedule(outcome: Any) -> None:
    """Run an observer's awaitable in the background (its exceptions are logged, then dropped)."""
    if inspect.isawaitable(outcome):
        task = asyncio.get_running_loop().create_task(_quiet(outcome))
        _background.add(task)
        task.add_done_callback(_background.discard)


_background: set[asyncio.Task[Any]] = set()


async def _quiet(awaitable: Any) -> None:
    import logging

    try:
        await awaitable
    except Exception:
        logging.getLogger("reelgen.plugins").exception("a reelgen_event observer raised")
