"""One SQLite connection per object for the governor's tables, with one write transaction at a time.

The lease table and the rate-window storage both keep a single connection (opened on
first use, WAL for a file, or a `file:` URI such as a shared in-memory database) and make
each change one `BEGIN IMMEDIATE` transaction: SQLite's write lock, taken at the first
statement, makes "count, then insert if there is room" atomic across processes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["SqliteFile"]


class SqliteFile:
    """`target` (a path, or a `file:` URI with `uri=True`) holding the tables of `schema`."""

    def __init__(self, target: str, *, uri: bool, schema: str) -> None:
        self.target = target
        self._uri = uri
        self._schema = schema
        #: Held for each use of the connection (it is shared by this object's threads).
        self.lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def db(self) -> sqlite3.Connection:
        if self._conn is None:
            if not self._uri:
                Path(self.target).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.target, uri=self._uri, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            if not self._uri:
                conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(self._schema)
            self._conn = conn
        return self._conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding SQLite's write lock from the first read."""
        with self.lock:
            conn = self.db()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
