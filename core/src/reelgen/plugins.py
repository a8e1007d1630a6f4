"""Loading plugins from the `reelgen` entry-point group, each inside its own guard.

A plugin that fails to import, or implements a hook that does not exist, is recorded
in `failures()` and left out; everything else keeps working (llm issue 1280 is what
happens otherwise). `REELGEN_LOAD_PLUGINS="dist-a,dist-b"` loads only those
distributions (an empty value loads none); the core's own built-ins always load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pluggy

from . import hookspecs
from .errors import PluginError
from .provider import ProviderFactory

__all__ = [
    "PluginFailure",
    "ProviderEntry",
    "failures",
    "get_plugin_manager",
    "provider_entries",
    "reset",
]

log = logging.getLogger("reelgen.plugins")

ENTRY_POINT_GROUP = "reelgen"
_CORE_DISTRIBUTION = "reelgen"
#: Core built-ins registered even when the installed entry points predate them.
_CORE_MODULES = {"reelgen_journal": "reelgen.builtins.journal", "reelgen_cluster": "reelgen.cluster.plugin"}


@attrs.frozen
class PluginFailure:
    """A plugin that could not be loaded, and why."""

    name: str
    distribution: str | None
    error: str


@attrs.frozen
class ProviderEntry:
    """A registered provider factory and the plugin that registered it."""

    name: str
    factory: ProviderFactory
    plugin: str


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pm: pluggy.PluginManager | None = None
        self.failures: list[PluginFailure] = []
        self.providers: dict[str, ProviderEntry] | None = None


_state = _State()


def _allowed_distributions() -> set[str] | None:
    raw = os.environ.get("REELGEN_LOAD_PLUGINS")
    if raw is None:
        return None
    return {name.strip().lower().replace("_", "-") for name in raw.split(",") if name.strip()}


def _entry_points() -> Iterator[importlib.metadata.EntryPoint]:
    # Core built-ins first, so that third-party implementations registered later are
    # called before them (pluggy calls the most recently registered first).
    points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    points.sort(key=lambda ep: (_dist_name(ep) != _CORE_DISTRIBUTION, ep.name))
    yield from points


def _dist_name(entry_point: importlib.metadata.EntryPoint) -> str | None:
    dist = getattr(entry_point, "dist", None)
    return dist.metadata["Name"].lower().replace("_", "-") if dist is not None else None


def _load_one(pm: pluggy.PluginManager, entry_point: importlib.metadata.EntryPoint) -> PluginFailure | None:
    dist = _dist_name(entry_point)
    if pm.get_plugin(entry_point.name) is not None or pm.is_blocked(entry_point.name):
        return None
    try:
        plugin = entry_point.load()
        pm.register(plugin, name=entry_point.name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a broken plugin must never take the program down
        return PluginFailure(entry_point.name, dist, f"{type(exc).__name__}: {exc}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=entry_point.name)
        return PluginFailure(entry_point.name, dist, f"PluginValidationError: {exc}")
    return None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    with _state.lock:
        if _state.pm is not None:
            return _state.pm
        pm = pluggy.PluginManager("reelgen")
        pm.add_hookspecs(hookspecs)
        allowed = _allowed_distributions()
        failures: list[PluginFailure] = []
        for entry_point in _entry_points():
            dist = _dist_name(entry_point)
            if allowed is not None and dist != _CORE_DISTRIBUTION and dist not in allowed:
                continue
            failure = _load_one(pm, entry_point)
            if failure is not None:
                log.warning("reelgen plugin %s failed to load: %s", failure.name, failure.error)
                failures.append(failure)
        for name, module in _CORE_MODULES.items():
            if pm.get_plugin(name) is None and not pm.is_blocked(name):
                try:
                    pm.register(importlib.import_module(module), name=name)
                except Exception as exc:  # noqa: BLE001 - a broken built-in is reported like any plugin
                    failures.append(PluginFailure(name, _CORE_DISTRIBUTION, f"{type(exc).__name__}: {exc}"))
        _state.pm = pm
        _state.failures = failures
        return pm


def failures() -> list[PluginFailure]:
    """Plugins that failed to load (import errors, bad hooks, broken provider registration)."""
    get_plugin_manager()
    provider_entries()
    return list(_state.failures)


def provider_entries() -> dict[str, ProviderEntry]:
    """Every registered provider by name. A plugin whose registration raises is a failure."""
    pm = get_plugin_manager()
    with _state.lock:
        if _state.providers is not None:
            return dict(_state.providers)
        entries: dict[str, ProviderEntry] = {}
        for impl in reversed(pm.hook.reelgen_register_providers.get_hookimpls()):

            def register(name: str, factory: ProviderFactory, _plugin: str = impl.plugin_name) -> None:
                if not isinstance(name, str) or not name.isidentifier():
                    raise PluginError(f"provider name {name!r} must be a Python identifier")
                if name in entries and entries[name].plugin != _plugin:
                    raise PluginError(f"provider {name!r} is already registered by plugin {entries[name].plugin!r}")
                entries[name] = ProviderEntry(name, factory, _plugin)

            try:
                impl.function(register=register)
            except Exception as exc:  # noqa: BLE001 - one plugin's bug must not hide the others
                _state.failures.append(PluginFailure(impl.plugin_name, None, f"{type(exc).__name__}: {exc}"))
        _state.providers = entries
        return dict(entries)


def reset() -> None:
    """Forget loaded plugins (tests, or after installing a plugin at run time)."""
    with _state.lock:
        _state.pm = None
        _state.failures = []
        _state.providers = None


def call_safely(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call an observer; log and swallow what it raises (events must not break a generation)."""
    try:
        return func(*args, **kwargs)
    except Exception:
        log.exception("reelgen event observer %r raised", func)
        return None
