"""One SQLite file shared by threads and processes: connections, transactions, damage reports.

One connection per thread (kept open: closing the last connection to a WAL database
checkpoints and deletes the WAL, which costs milliseconds per call), WAL journal, a
busy timeout. Each record store (`reelgen._store`, `reelgen.builtins.journal`,
`reelgen._timings`) creates only its own table, through `Database.ensure`.

A file that is not a database (or is damaged) raises `ConfigError` naming the file and
the fix, instead of a traceback from deep inside sqlite3.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from .errors import ConfigError

__all__ = ["Database", "DatabaseDamaged", "database", "move_aside", "sqlite_path"]

T = TypeVar("T")


class DatabaseDamaged(ConfigError):
    """The file is not an SQLite database, or is damaged. `path` names it."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path


def sqlite_path(url: str, *, setting: str) -> Path:
    """The file of a `sqlite:///path` URL (or a bare path); `setting` names it in errors."""
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else url
    if "://" in path:
        raise ConfigError(f"{setting} = {url!r} is not supported: use sqlite:///path/to/file.db, or off")
    return Path(path).expanduser().resolve()


def move_aside(path: Path) -> Path:
    """Rename a damaged database (and its WAL files) out of the way, keeping it; return the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


def _with_lock_retries(action: Callable[[], T], *, seconds: float = 30.0) -> T:
    """Run `action`, retrying while another process holds the database.

    Switching a new database to WAL needs an exclusive lock, and SQLite reports a
    conflict there at once instead of waiting for the busy timeout, so processes that
    open a fresh database together retry here.
    """
    deadline = time.monotonic() + seconds
    delay = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class Database:
    """One SQLite file. `what` says what it holds ("cache", "job journal") for messages."""

    def __init__(self, path: Path, *, what: str, fix: str) -> None:
        self.path = path
        self.what = what
        self.fix = fix
        self._local = threading.local()
        self._lock = threading.Lock()
        self._tables: set[str] = set()

    def damaged(self, exc: BaseException) -> DatabaseDamaged:
        return DatabaseDamaged(
            f"the {self.what} file {self.path} is not a usable SQLite database ({exc}): {self.fix}",
            path=self.path,
        )

    def _connection(self) -> sqlite3.Connection:
        # A forked child must not use its parent's connection: it opens its own.
        owner, connection = getattr(self._local, "connection", (None, None))
        if connection is None or owner != os.getpid():
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the folder for the {self.what} {self.path}: {exc}") from exc
            try:
                connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
                connection.execute("PRAGMA busy_timeout = 30000")
                # WAL + NORMAL survives a crash of any process; only a power cut can lose the
                # last transactions, which for a cache and a journal is the right trade.
                connection.execute("PRAGMA synchronous = NORMAL")
                _with_lock_retries(lambda: connection.execute("PRAGMA journal_mode = WAL"))
            except sqlite3.DatabaseError as exc:
                raise self.damaged(exc) from exc
            self._local.connection = (os.getpid(), connection)
        return connection  # type: ignore[no-any-return]

    def ensure(self, table: str, schema: str) -> None:
        """Create `table` (and its indexes) with `schema` once per process."""
        with self._lock:
            if table in self._tables:
                return
            connection = self._connection()
            try:
                _with_lock_retries(lambda: connection.executescript(schema))
            except sqlite3.DatabaseError as exc:
                raise self.damaged(exc) from exc
            self._tables.add(table)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one write transaction (committed on success, rolled back on error)."""
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self.damaged(exc) from exc
        try:
            yield connection
        except sqlite3.DatabaseError as exc:
            connection.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise self.damaged(exc) from exc
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


_databases: dict[Path, Database] = {}
_databases_lock = threading.Lock()


def database(path: Path, *, what: str, fix: str) -> Database:
    """The shared `Database` for `path` in this process."""
    with _databases_lock:
        db = _databases.get(path)
        if db is None:
            db = _databases[path] = Database(path, what=what, fix=fix)
        return db


def forget(path: Path) -> None:
    """Drop the process's handle on `path` (after moving a damaged file aside)."""
    with _databases_lock:
        _databases.pop(path, None)
