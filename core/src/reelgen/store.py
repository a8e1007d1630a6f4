"""A small SQLite database for the result cache, the job store, and past generation times.

One connection per operation, WAL journal, a busy timeout: safe to share between
threads and processes. Only URLs and metadata are stored: never a video, never an
image's bytes (a request's inline image is replaced by its content hash), never a secret.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from .contract import VideoRequest, VideoResult
from .errors import ConfigError
from .images import image_key
from .serialization import structure, unstructure

__all__ = ["CacheEntry", "JobRecord", "SqliteStore", "open_store", "sanitized_request"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    created_at REAL NOT NULL,
    request TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    key TEXT,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    request TEXT,
    job TEXT NOT NULL,
    result TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS timings (
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    duration REAL NOT NULL,
    pixels INTEGER NOT NULL,
    seconds REAL NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS timings_by_model ON timings (provider, model, at);
"""


def _initialize(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA journal_mode = WAL")
    connection.executescript(_SCHEMA)


def _with_lock_retries(action: Callable[[], None], *, seconds: float = 30.0) -> None:
    """Run `action`, retrying while another process holds the database.

    Switching a new database to WAL needs an exclusive lock, and SQLite reports a
    conflict there at once instead of waiting for the busy timeout, so processes that
    open a fresh database together retry here.
    """
    deadline = time.monotonic() + seconds
    delay = 0.005
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def sanitized_request(request: VideoRequest) -> dict[str, Any]:
    """The request as JSON, with an inline or local image replaced by its content hash."""
    data: dict[str, Any] = unstructure(request)
    if request.reference_image is not None:
        data["reference_image"] = image_key(request.reference_image)
    return data


@attrs.frozen
class CacheEntry:
    key: str
    provider: str
    model: str
    created_at: float
    result: VideoResult


@attrs.frozen
class JobRecord:
    id: str
    provider: str
    key: str | None
    state: str
    created_at: float
    updated_at: float
    request: dict[str, Any] | None
    job: dict[str, Any]
    result: VideoResult | None
    error: str | None


class SqliteStore:
    """The database behind the built-in cache and the job store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._ready = False

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread, kept open: closing the last connection to a WAL
        # database checkpoints and deletes the WAL file, which costs milliseconds per call.
        # A forked child must not use its parent's connection: it opens its own.
        owner, connection = getattr(self._local, "connection", (None, None))
        if connection is None or owner != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA busy_timeout = 30000")
            # WAL + NORMAL survives a crash of any process; only a power cut can lose the
            # last transactions, which for a cache and a job store is the right trade.
            connection.execute("PRAGMA synchronous = NORMAL")
            with self._schema_lock:
                if not self._ready:
                    _with_lock_retries(lambda: _initialize(connection))
                    self._ready = True
            self._local.connection = (os.getpid(), connection)
        return connection

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction (committed on success, rolled back on error)."""
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    # -- cache -----------------------------------------------------------------------

    def cache_get(self, key: str) -> CacheEntry | None:
        with self.connect() as db:
            row = db.execute(
                "SELECT key, provider, model, created_at, result FROM cache WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return CacheEntry(row[0], row[1], row[2], row[3], structure(json.loads(row[4]), VideoResult))

    def cache_put(self, key: str, request: VideoRequest, result: VideoResult) -> None:
        stored = attrs.evolve(result, cached=False)
        with self.connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO cache (key, provider, model, created_at, request, result) VALUES (?,?,?,?,?,?)",
                (
                    key,
                    result.provider,
                    result.model,
                    time.time(),
                    json.dumps(sanitized_request(request)),
                    json.dumps(unstructure(stored)),
                ),
            )

    def cache_delete(self, key: str) -> None:
        with self.connect() as db:
            db.execute("DELETE FROM cache WHERE key = ?", (key,))

    def cache_list(self) -> list[CacheEntry]:
        with self.connect() as db:
            rows = db.execute(
                "SELECT key, provider, model, created_at, result FROM cache ORDER BY created_at DESC"
            ).fetchall()
        return [CacheEntry(r[0], r[1], r[2], r[3], structure(json.loads(r[4]), VideoResult)) for r in rows]

    def cache_clear(self) -> int:
        with self.connect() as db:
            return db.execute("DELETE FROM cache").rowcount

    # -- jobs ------------------------------------------------------------------------

    def job_put(
        self,
        job_id: str,
        *,
        provider: str,
        job: dict[str, Any],
        state: str,
        key: str | None = None,
        request: VideoRequest | None = None,
    ) -> None:
        now = time.time()
        with self.connect() as db:
            db.execute(
                "INSERT INTO jobs (id, provider, key, state, created_at, updated_at, request, job) "
                "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at, job = excluded.job",
                (
                    job_id,
                    provider,
                    key,
                    state,
                    now,
                    now,
                    json.dumps(sanitized_request(request)) if request is not None else None,
                    json.dumps(job),
                ),
            )

    def job_update(
        self,
        job_id: str,
        *,
        state: str,
        result: VideoResult | None = None,
        error: str | None = None,
        timing: tuple[str, str, float, int, float] | None = None,
    ) -> None:
        """Record a job's new state; `timing` (provider, model, duration, pixels, seconds) goes in too."""
        with self.connect() as db:
            db.execute(
                "UPDATE jobs SET state = ?, updated_at = ?, result = COALESCE(?, result), error = ? WHERE id = ?",
                (state, time.time(), json.dumps(unstructure(result)) if result else None, error, job_id),
            )
            if timing is not None:
                db.execute(
                    "INSERT INTO timings (provider, model, duration, pixels, seconds, at) VALUES (?,?,?,?,?,?)",
                    (*timing, time.time()),
                )

    def job_get(self, job_id: str) -> JobRecord | None:
        with self.connect() as db:
            row = db.execute(
                "SELECT id, provider, key, state, created_at, updated_at, request, job, result, error "
                "FROM jobs WHERE id = ?",
                (job_id,),
            ).fetchone()
        if row is None:
            return None
        return JobRecord(
            id=row[0],
            provider=row[1],
            key=row[2],
            state=row[3],
            created_at=row[4],
            updated_at=row[5],
            request=json.loads(row[6]) if row[6] else None,
            job=json.loads(row[7]),
            result=structure(json.loads(row[8]), VideoResult) if row[8] else None,
            error=row[9],
        )

    # -- timings ---------------------------------------------------------------------

    def timing_estimate(self, provider: str, model: str, duration: float, pixels: int) -> float | None:
        """Median seconds of the last similar generations, scaled by output seconds x pixels."""
        with self.connect() as db:
            rows = db.execute(
                "SELECT duration, pixels, seconds FROM timings WHERE provider = ? AND model = ? "
                "ORDER BY at DESC LIMIT 20",
                (provider, model),
            ).fetchall()
        if not rows:
            return None
        work = duration * pixels
        return float(statistics.median(seconds * work / max(1.0, d * p) for d, p, seconds in rows))


_stores: dict[Path, SqliteStore] = {}
_stores_lock = threading.Lock()


def open_store(url: str) -> SqliteStore:
    """The store for a `sqlite:///path` URL (or a bare path); one instance per file per process."""
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else url
    if "://" in path:
        raise ConfigError(f"unsupported database URL {url!r}: use sqlite:///path/to/file.db")
    resolved = Path(path).expanduser().resolve()
    with _stores_lock:
        store = _stores.get(resolved)
        if store is None:
            store = _stores[resolved] = SqliteStore(resolved)
        return store
