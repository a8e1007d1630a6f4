"""Finding providers by name and building them from configuration.

A factory that is a `BaseProvider` subclass with a `config_class` gets its
`[providers.NAME]` section structured by the core first (errors name
`providers.NAME.key`); any other factory gets the section as a mapping.

Instances are kept per (name, provider config) for the life of the process, so that a
provider's account limits (concurrency, submission rate) hold across calls.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import attrs

from .capabilities import Capabilities
from .config import Config
from .errors import ConfigError, PluginError
from .plugins import provider_entries
from .provider import BaseProvider, Provider

__all__ = ["ProviderInfo", "clear_instances", "get_provider", "provider_infos", "resolve_provider_name"]

#: Picked when the configuration names no provider and it is installed.
DEFAULT_PROVIDER = "bailian_wan"

_lock = threading.Lock()
_instances: dict[tuple[str, str], Provider] = {}


@attrs.frozen
class ProviderInfo:
    """An installed provider: its plugin, and its capabilities (or why it could not be built)."""

    name: str
    plugin: str
    capabilities: Capabilities | None
    error: str | None = None


def resolve_provider_name(name: str | None, config: Config) -> str:
    """The provider to use: the argument, else the config (`provider`, `REELGEN_PROVIDER`), else a default."""
    entries = provider_entries()
    chosen = name or config.provider
    if chosen is None:
        if DEFAULT_PROVIDER in entries:
            chosen = DEFAULT_PROVIDER
        elif len(entries) == 1:
            chosen = next(iter(entries))
        else:
            installed = ", ".join(sorted(entries)) or "none"
            raise ConfigError(
                f"no provider chosen: pass --provider, set REELGEN_PROVIDER, or set provider in reelgen.toml "
                f"(installed: {installed})"
            )
    if chosen not in entries:
        installed = ", ".join(sorted(entries)) or "none"
        raise PluginError(
            f"provider {chosen!r} is not installed (installed: {installed}); "
            "run `reelgen providers` to see plugins that failed to load"
        )
    return chosen


def _build(name: str, provider_config: Mapping[str, Any]) -> Provider:
    entry = provider_entries()[name]
    factory = entry.factory
    try:
        if isinstance(factory, type) and issubclass(factory, BaseProvider) and factory.config_class is not None:
            from ._settings import structure_provider_config

            # Named by the registration (the config section's name), whatever the class says.
            settings = structure_provider_config(factory.config_class, provider_config, provider=name)
            provider: Provider = factory(settings)
        else:
            provider = factory(dict(provider_config))
    except (ConfigError, PluginError):
        raise
    except Exception as exc:
        raise ConfigError(f"provider {name!r} could not be set up: {type(exc).__name__}: {exc}") from exc
    if not isinstance(provider, Provider):
        raise PluginError(f"provider {name!r} (plugin {entry.plugin!r}) does not implement reelgen.Provider")
    return provider


def get_provider(name: str | None = None, *, config: Config) -> Provider:
    """The provider instance for `name` under `config` (shared per process)."""
    chosen = resolve_provider_name(name, config)
    provider_config = config.provider_config(chosen)
    cache_id = json.dumps(provider_config, sort_keys=True, default=str)
    with _lock:
        provider = _instances.get((chosen, cache_id))
        if provider is None:
            provider = _build(chosen, provider_config)
            _instances[(chosen, cache_id)] = provider
        return provider


def provider_for_row(
    provider: str | None, account: str | None, *, config: Config, default: str | None = None
) -> Provider:
    """The provider a batch row names: its `account` (`[accounts.NAME]`), else its `provider`, else `default`."""
    if account is None:
        return get_provider(provider if provider is not None else default, config=config)
    owner, account_config = config.for_account(account, provider=provider)
    return get_provider(owner, config=account_config)


def provider_for_account(name: str, account_id: str, *, config: Config) -> Provider:
    """The provider `name` calling as the account `account_id` (a journal entry's): the configured
    default when it is that account, else the `[accounts.*]` of `name` that is, else the default."""
    default = get_provider(name, config=config)
    if not account_id or str(getattr(default, "account_id", "") or "") == account_id:
        return default
    for account, section in sorted(config.accounts.items()):
        if section.get("provider") != name:
            continue
        candidate = provider_for_row(None, account, config=config)
        if str(getattr(candidate, "account_id", "") or "") == account_id:
            return candidate
    return default


def clear_instances() -> None:
    """Forget built providers (after changing plugins or configuration at run time)."""
    with _lock:
        _instances.clear()


def provider_infos(config: Config) -> list[ProviderInfo]:
    infos = []
    for name, entry in sorted(provider_entries().items()):
        try:
            provider = get_provider(name, config=config)
            infos.append(ProviderInfo(name, entry.plugin, provider.capabilities))
        except Exception as exc:  # noqa: BLE001 - list it with the reason rather than hide it
            infos.append(ProviderInfo(name, entry.plugin, None, f"{type(exc).__name__}: {exc}"))
    return infos
