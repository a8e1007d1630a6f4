"""A `limits` storage in a SQLite file, so every process on one machine shares its rate windows.

`limits` ships memory, Redis, Memcached and MongoDB storages, none of which shares state
between processes on one machine without a server. This one implements what the moving
window strategy needs (`acquire_entry`, `get_moving_window`) plus the base counter
methods, each change in one `BEGIN IMMEDIATE` transaction: SQLite's write lock makes the
count-then-insert atomic across processes, as the Lua script does for Redis.

One addition beyond `limits`' API, `restamp_entry`, moves an entry from a call's start
to its end (the governor's `Token.done()`): the service counts a call when it arrives,
which is never after its end. A `file:...?mode=memory&cache=shared` URI keeps the windows
in this process only (jobs disabled).

Timestamps are `time.time()`, like `limits`' own storages (a wall clock shared by every
process on the machine, unlike a per-boot monotonic clock in a file that outlives a reboot).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from limits.storage import MovingWindowSupport, Storage

from ._sqlitefile import SqliteFile

__all__ = ["SqliteWindowStorage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS window_entries (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS window_entries_key_at ON window_entries (key, at);
CREATE TABLE IF NOT EXISTS window_counters (
    key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL NOT NULL
);
"""
SCHEME = "reelgen+sqlite"


class SqliteWindowStorage(Storage, MovingWindowSupport):
    """`reelgen+sqlite:///path/to/file.db`, a plain path, or a `file:` URI. Safe across threads and processes."""

    STORAGE_SCHEME = [SCHEME]  # noqa: RUF012 - `limits`' registry reads this class attribute

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: float | str | bool) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        prefix = SCHEME + "://"
        self.target = uri[len(prefix) :] if uri.startswith(prefix) else uri
        self._file = SqliteFile(self.target, uri=self.target.startswith("file:"), schema=_SCHEMA)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    # -- connection ------------------------------------------------------------------

    def close(self) -> None:
        self._file.close()

    # -- moving window ---------------------------------------------------------------

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        with self._file.write() as conn:
            now = time.time()
            conn.execute("DELETE FROM window_entries WHERE key = ? AND at < ?", (key, now - expiry))
            (count,) = conn.execute("SELECT COUNT(*) FROM window_entries WHERE key = ?", (key,)).fetchone()
            if count + amount > limit:
                return False
            conn.executemany("INSERT INTO window_entries (key, at) VALUES (?, ?)", [(key, now)] * amount)
            return True

    def restamp_entry(self, key: str, started_after: float, ended_at: float) -> None:
        """Move one entry made at or after `started_after` to `ended_at`; add one if none is
        left (a call longer than the window: its entry was pruned while it ran)."""
        with self._file.write() as conn:
            row = conn.execute(
                "SELECT rowid FROM window_entries WHERE key = ? AND at >= ? AND at <= ? ORDER BY at LIMIT 1",
                (key, started_after, ended_at),
            ).fetchone()
            if row is None:
                conn.execute("INSERT INTO window_entries (key, at) VALUES (?, ?)", (key, ended_at))
            else:
                conn.execute("UPDATE window_entries SET at = ? WHERE rowid = ?", (ended_at, row[0]))

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        with self._file.lock:
            now = time.time()
            oldest, count = (
                self._file.db()
                .execute("SELECT MIN(at), COUNT(*) FROM window_entries WHERE key = ? AND at >= ?", (key, now - expiry))
                .fetchone()
            )
        return (float(oldest) if oldest is not None else now), int(count)

    # -- counters (the fixed-window methods every storage has) -------------------------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        with self._file.write() as conn:
            now = time.time()
            row = conn.execute("SELECT value, expires_at FROM window_counters WHERE key = ?", (key,)).fetchone()
            if row is None or row[1] <= now:
                value, expires_at = amount, now + expiry
            else:
                value, expires_at = row[0] + amount, row[1]
            conn.execute(
                "INSERT OR REPLACE INTO window_counters (key, value, expires_at) VALUES (?, ?, ?)",
                (key, value, expires_at),
            )
            return int(value)

    def get(self, key: str) -> int:
        row = self._counter(key)
        return int(row[0]) if row is not None else 0

    def get_expiry(self, key: str) -> float:
        row = self._counter(key)
        return float(row[1]) if row is not None else time.time()

    def _counter(self, key: str) -> Any:
        with self._file.lock:
            return (
                self._file.db()
                .execute(
                    "SELECT value, expires_at FROM window_counters WHERE key = ? AND expires_at > ?", (key, time.time())
                )
                .fetchone()
            )

    def check(self) -> bool:
        try:
            with self._file.lock:
                self._file.db().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        with self._file.write() as conn:
            removed = conn.execute("DELETE FROM window_entries").rowcount
            removed += conn.execute("DELETE FROM window_counters").rowcount
            return int(removed)

    def clear(self, key: str) -> None:
        with self._file.write() as conn:
            conn.execute("DELETE FROM window_entries WHERE key = ?", (key,))
            conn.execute("DELETE FROM window_counters WHERE key = ?", (key,))
