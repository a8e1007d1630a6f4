"""Built-in result cache on SQLite. Registered `trylast`: a plugin's cache answers first.

A hit is only served if the stored video is still there and still the recorded file
(a local file's sha256 is checked; a remote one's size); otherwise the entry is
dropped and the video is generated again: a cache must never hand out a dead URL or a
file that changed. An unusable cache file never stops a generation: it is a warning
naming the file and the fix, and the generation goes on uncached.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..hookspecs import hookimpl
from ..uris import file_url_to_path, strip_query

if TYPE_CHECKING:
    from ..config import Config
    from ..contract import VideoRequest, VideoResult

# Plugins load whenever the CLI starts (even for --help): the store, config and
# cattrs are imported by the hooks, when a generation needs them.

__all__ = ["video_exists"]

log = logging.getLogger("reelgen.cache")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def video_exists(result: VideoResult, options: dict[str, Any] | None = None) -> bool:
    """True if the stored video is still there and still the recorded file."""
    url = result.video_url
    if url.startswith("file://"):
        path = file_url_to_path(url)
        try:
            return path.is_file() and path.stat().st_size == result.bytes and _sha256(path) == result.sha256
        except OSError:
            return False
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url, **(options or {}))
        return bool(fs.exists(path)) and int(fs.size(path)) == result.bytes
    except Exception:  # noqa: BLE001 - an unreachable store means we cannot vouch for the entry
        log.warning("cannot check cached video %s; treating as a miss", strip_query(url))
        return False


def _unusable(config: Config, exc: Exception) -> None:
    log.warning("the cache is unusable, going on without it: %s", exc)


@hookimpl(trylast=True)
def reelgen_cache_get(key: str, request: VideoRequest, config: Config) -> VideoResult | None:
    import attrs

    from .._store import open_cache
    from ..errors import ConfigError

    if not config.cache.enabled:
        return None
    try:
        store = open_cache(config.cache.url)
        entry = store.cache_get(key)
        if entry is None:
            return None
        if not video_exists(entry.result, dict(config.storage.options)):
            store.cache_delete(key)
            return None
    except ConfigError as exc:
        _unusable(config, exc)
        return None
    return attrs.evolve(entry.result, cached=True)


@hookimpl(trylast=True)
def reelgen_cache_put(key: str, request: VideoRequest, result: VideoResult, config: Config) -> None:
    from .._store import open_cache
    from ..errors import ConfigError

    if config.cache.enabled:
        try:
            open_cache(config.cache.url).cache_put(key, request, result)
        except ConfigError as exc:
            _unusable(config, exc)
