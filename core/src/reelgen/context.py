"""The configuration in effect for the generation being run, for plugins that need it.

Hooks have fixed signatures; the built-in cache and storage read their settings from
here. The pipeline sets it for the duration of each call (a ContextVar, so concurrent
generations with different configs don't mix).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from .config import Config, load_config

__all__ = ["current_config", "using_config"]

_active: ContextVar[Config | None] = ContextVar("reelgen_config", default=None)


def current_config() -> Config:
    """The config of the running generation, else the one loaded from file and environment."""
    config = _active.get()
    return config if config is not None else load_config()


@contextlib.contextmanager
def using_config(config: Config) -> Iterator[Config]:
    token = _active.set(config)
    try:
        yield config
    finally:
        _active.reset(token)
