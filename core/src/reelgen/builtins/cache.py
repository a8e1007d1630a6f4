"""Built-in result cache on SQLite. Registered `trylast`: a plugin's cache answers first.

A hit is only served if the stored video is still where the result says; otherwise the
entry is dropped and the video is generated again (a cache must never hand out a dead URL).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from ..contract import VideoRequest, VideoResult

# Plugins load whenever the CLI starts (even for --help): the store, config and
# cattrs are imported by the hooks, when a generation needs them.

__all__ = ["video_exists"]

log = logging.getLogger("reelgen.cache")


def video_exists(result: VideoResult) -> bool:
    """True if the stored video is still there with the recorded size."""
    url = result.video_url
    if url.startswith("file://"):
        path = Path(unquote(urlparse(url).path))
        return path.is_file() and path.stat().st_size == result.bytes
    try:
        import fsspec

        from ..context import current_config

        fs, path = fsspec.core.url_to_fs(url, **current_config().storage.options)
        return bool(fs.exists(path)) and int(fs.size(path)) == result.bytes
    except Exception:  # noqa: BLE001 - an unreachable store means we cannot vouch for the entry
        log.warning("cannot check cached video %s; treating as a miss", url.split("?", 1)[0])
        return False


@hookimpl(trylast=True)
def reelgen_cache_get(key: str, request: VideoRequest) -> VideoResult | None:
    import attrs

    from ..context import current_config
    from ..store import open_store

    config = current_config().cache
    if not config.enabled:
        return None
    store = open_store(config.url)
    entry = store.cache_get(key)
    if entry is None:
        return None
    if not video_exists(entry.result):
        store.cache_delete(key)
        return None
    return attrs.evolve(entry.result, cached=True)


@hookimpl(trylast=True)
def reelgen_cache_put(key: str, request: VideoRequest, result: VideoResult) -> None:
    from ..context import current_config
    from ..store import open_store

    config = current_config().cache
    if config.enabled:
        open_store(config.url).cache_put(key, request, result)
