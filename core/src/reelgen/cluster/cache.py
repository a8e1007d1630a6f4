"""The result cache in Redis: the same entries as the SQLite cache, shared by every machine.

`NAMESPACE:cache:KEY` holds JSON with the sanitized request (an image is its content hash)
and the result (URLs and metadata, never the video or a secret); `NAMESPACE:cache:index`
lists the keys by time. A hit is served only while its video is still where the result
says and still the recorded file (`reelgen.builtins.cache.video_exists`): a machine that
cannot see another's local folder gets a miss, never a dead URL.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ._redis import client_for, guarded

if TYPE_CHECKING:
    from .._store import CacheEntry
    from ..contract import VideoRequest, VideoResult

__all__ = ["RedisCache", "cache_delete", "cache_get", "cache_put"]


def _key(namespace: str, key: str) -> str:
    return f"{namespace}:cache:{key}"


def cache_get(url: str, namespace: str, key: str, *, options: dict[str, Any] | None = None) -> VideoResult | None:
    """The cached result for `key` (marked `cached`), or None; drops an entry whose video is gone."""
    import attrs

    from ..builtins.cache import video_exists
    from ..contract import VideoResult
    from ..serialization import structure

    with guarded(url, "read the cache in"):
        raw: Any = client_for(url, check=False).get(_key(namespace, key))
    if raw is None:
        return None
    result = structure(json.loads(raw)["result"], VideoResult)
    if not video_exists(result, options):
        cache_delete(url, namespace, key)
        return None
    return attrs.evolve(result, cached=True)


def cache_put(url: str, namespace: str, key: str, request: VideoRequest, result: VideoResult) -> None:
    from .._store import sanitized_request
    from ..serialization import unstructure

    document = {"request": sanitized_request(request), "result": unstructure(result), "stored_at": time.time()}
    with guarded(url, "write the cache in"):
        client = client_for(url, check=False)
        with client.pipeline() as pipe:
            pipe.set(_key(namespace, key), json.dumps(document, allow_nan=False))
            pipe.zadd(f"{namespace}:cache:index", {key: document["stored_at"]})
            pipe.execute()


def cache_delete(url: str, namespace: str, key: str) -> None:
    with guarded(url, "write the cache in"):
        client = client_for(url, check=False)
        with client.pipeline() as pipe:
            pipe.delete(_key(namespace, key))
            pipe.zrem(f"{namespace}:cache:index", key)
            pipe.execute()


class RedisCache:
    """What `reelgen cache list|clear` needs of the shared cache (every machine's entries)."""

    def __init__(self, url: str, namespace: str) -> None:
        from ._redis import safe_url

        self.url = url
        self.namespace = namespace
        self.path = safe_url(url)  # named in messages: never a password

    def cache_list(self) -> list[CacheEntry]:
        """Every entry, newest first."""
        from .._store import CacheEntry
        from ..contract import VideoResult
        from ..serialization import structure

        with guarded(self.url, "read the cache in"):
            client: Any = client_for(self.url, check=False)
            keys = [str(key) for key in client.zrevrange(f"{self.namespace}:cache:index", 0, -1)]
            documents = client.mget([_key(self.namespace, key) for key in keys]) if keys else []
        entries = []
        for key, raw in zip(keys, documents, strict=True):
            if raw is None:
                continue  # deleted meanwhile
            document = json.loads(raw)
            result = structure(document["result"], VideoResult)
            prompt = document.get("request", {}).get("prompt")
            entries.append(
                CacheEntry(
                    key=key,
                    provider=result.provider,
                    model=result.model,
                    created_at=float(document.get("stored_at", 0.0)),
                    result=result,
                    prompt=prompt if isinstance(prompt, str) else "",
                )
            )
        return entries

    def cache_clear(self) -> int:
        """Forget every entry (stored videos are kept); returns how many were forgotten."""
        with guarded(self.url, "write the cache in"):
            client: Any = client_for(self.url, check=False)
            index = f"{self.namespace}:cache:index"
            keys = [str(key) for key in client.zrange(index, 0, -1)]
            with client.pipeline() as pipe:
                for start in range(0, len(keys), 500):
                    pipe.delete(*[_key(self.namespace, key) for key in keys[start : start + 500]])
                pipe.delete(index)
                pipe.execute()
        return len(keys)
