"""The result cache's records in SQLite: cache key -> the stored, measured `VideoResult`.

Only URLs and metadata are kept: never a video, never an image's bytes (a request's
inline image is replaced by its content hash), never a secret. The file is shared by
threads and processes (`reelgen._sqlite`); this module creates only the `cache` table.
The job journal and past timings live in their own stores (`reelgen.builtins.journal`,
`reelgen._timings`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from ._sqlite import Database, DatabaseDamaged, database, forget, move_aside, sqlite_path
from .contract import VideoRequest, VideoResult
from .serialization import structure, unstructure

__all__ = ["CacheEntry", "CacheStore", "SqliteStore", "open_cache", "open_store", "sanitized_request"]

log = logging.getLogger("reelgen.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    created_at REAL NOT NULL,
    request TEXT NOT NULL,
    result TEXT NOT NULL
);
"""
_FIX = "move it aside (`reelgen cache clear` does, keeping the file) or point cache.url elsewhere"


def sanitized_request(request: VideoRequest, image_digest: str | None = None) -> dict[str, Any]:
    """The request as JSON, with an inline or local image replaced by its content hash.

    `image_digest` is the hash already computed at the gate (the image is read once).
    """
    data: dict[str, Any] = unstructure(request)
    if request.reference_image is not None:
        if image_digest is None:
            from .images import image_key

            image_digest = image_key(request.reference_image)
        data["reference_image"] = image_digest
    return data


@attrs.frozen
class CacheEntry:
    key: str
    provider: str
    model: str
    created_at: float
    result: VideoResult
    #: The request's prompt (for `reelgen cache list`); "" where not read.
    prompt: str = ""


def _prompt_of(request_json: str | None) -> str:
    try:
        prompt = json.loads(request_json or "{}").get("prompt")
    except (ValueError, AttributeError):
        return ""
    return prompt if isinstance(prompt, str) else ""


class CacheStore:
    """The cache table of one SQLite file."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.path = db.path
        #: Where `cache_clear` moved a damaged file, if it had to.
        self.moved_aside: Path | None = None

    def _ready(self) -> Database:
        self._db.ensure("cache", _SCHEMA)
        return self._db

    def cache_get(self, key: str) -> CacheEntry | None:
        with self._ready().transaction() as db:
            row = db.execute(
                "SELECT key, provider, model, created_at, result FROM cache WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return CacheEntry(row[0], row[1], row[2], row[3], structure(json.loads(row[4]), VideoResult))

    def cache_put(
        self, key: str, request: VideoRequest | dict[str, Any], result: VideoResult, *, image_digest: str | None = None
    ) -> None:
        stored = attrs.evolve(result, cached=False)
        request_data = request if isinstance(request, dict) else sanitized_request(request, image_digest)
        with self._ready().transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO cache (key, provider, model, created_at, request, result) VALUES (?,?,?,?,?,?)",
                (
                    key,
                    result.provider,
                    result.model,
                    time.time(),
                    json.dumps(request_data),
                    json.dumps(unstructure(stored)),
                ),
            )

    def cache_delete(self, key: str) -> None:
        with self._ready().transaction() as db:
            db.execute("DELETE FROM cache WHERE key = ?", (key,))

    def cache_list(self) -> list[CacheEntry]:
        with self._ready().transaction() as db:
            rows = db.execute(
                "SELECT key, provider, model, created_at, result, request FROM cache ORDER BY created_at DESC"
            ).fetchall()
        return [
            CacheEntry(r[0], r[1], r[2], r[3], structure(json.loads(r[4]), VideoResult), _prompt_of(r[5])) for r in rows
        ]

    def cache_clear(self) -> int:
        """Forget every entry. A damaged file is moved aside (kept, never deleted): see `moved_aside`."""
        try:
            with self._ready().transaction() as db:
                return db.execute("DELETE FROM cache").rowcount
        except DatabaseDamaged:
            self.moved_aside = move_aside(self.path)
            forget(self.path)
            log.warning("the cache file %s was damaged; moved it aside to %s", self.path, self.moved_aside)
            with _stores_lock:
                _stores.pop(self.path, None)
            return 0


#: The old name, kept for callers of `open_store`.
SqliteStore = CacheStore

_stores: dict[Path, CacheStore] = {}
_stores_lock = threading.Lock()


def open_cache(url: str) -> CacheStore:
    """The cache store for a `sqlite:///path` URL (or a bare path); one per file per process."""
    path = sqlite_path(url, setting="cache.url")
    with _stores_lock:
        store = _stores.get(path)
        if store is None:
            store = _stores[path] = CacheStore(database(path, what="cache", fix=_FIX))
        return store


open_store = open_cache
