"""The Redis plugin: answers the governor, journal and cache hooks when `cluster.redis` is set.

Registered like any plugin (entry point `reelgen_cluster`), without `trylast`, so it
answers before the SQLite built-ins; with no Redis configured every hook passes (returns
None) and the built-ins answer. Imports nothing heavy until a hook runs with Redis set.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from ..builtins.governor import LeaseGovernor
    from ..config import Config
    from ..contract import VideoRequest, VideoResult
    from .journal import RedisJournal

log = logging.getLogger("reelgen.cluster")


def _settings(config: Config) -> tuple[str, str] | None:
    from ._redis import redis_settings

    return redis_settings(config)


@hookimpl
def reelgen_governor(config: Config) -> LeaseGovernor | None:
    settings = _settings(config)
    if settings is None:
        return None
    from .governor import redis_governor

    return redis_governor(*settings)


@hookimpl
def reelgen_journal(config: Config) -> RedisJournal | None:
    from ..config import is_disabled

    url = config.jobs.url
    if is_disabled(url):
        return None
    settings = _settings(config)
    if url.startswith(("redis://", "rediss://", "unix://")):
        settings = (url, settings[1] if settings else getattr(config.cluster, "namespace", "reelgen"))
    if settings is None:
        return None
    from .journal import redis_journal

    return redis_journal(*settings)


@hookimpl
def reelgen_cache_get(key: str, request: VideoRequest, config: Config) -> VideoResult | None:
    settings = _settings(config)
    if settings is None or not config.cache.enabled:
        return None
    from ._redis import RedisUnavailable
    from .cache import cache_get

    try:
        return cache_get(*settings, key, options=dict(config.storage.options))
    except RedisUnavailable as exc:
        log.warning("the Redis cache is unusable, going on without it: %s", exc)
        return None


@hookimpl
def reelgen_cache_put(key: str, request: VideoRequest, result: VideoResult, config: Config) -> None:
    settings = _settings(config)
    if settings is None or not config.cache.enabled:
        return
    from ._redis import RedisUnavailable
    from .cache import cache_put

    try:
        cache_put(*settings, key, request, result)
    except RedisUnavailable as exc:
        log.warning("could not record %s in the Redis cache: %s", key, exc)
