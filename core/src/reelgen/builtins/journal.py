"""Built-in job journal on SQLite (`jobs.url`). Registered `trylast`: a plugin's journal answers first.

One row per entry: the searchable fields as columns, the whole entry as cattrs JSON.
Every change is a read-modify-write inside one `BEGIN IMMEDIATE` transaction, so
single-flight (`open`) and adoption (`adopt`) are atomic across processes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    import sqlite3

    from .._sqlite import Database
    from .._timings import TimingStore
    from ..config import Config
    from ..journal import JournalEntry, Opened, Owner

__all__ = ["SqliteJournal", "open_journal", "timings_for"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    shared INTEGER NOT NULL,
    provider TEXT NOT NULL,
    task_id TEXT,
    submitted_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_by_key ON journal (key, state);
CREATE INDEX IF NOT EXISTS journal_by_task ON journal (provider, task_id);
CREATE INDEX IF NOT EXISTS journal_by_time ON journal (submitted_at);
"""
_FIX = (
    "move it aside (e.g. `mv {path} {path}.corrupt`; the paid jobs it lists can still be found "
    "at the provider) or point jobs.url elsewhere"
)
_OPEN_STATES = ("submitting", "queued", "running", "delivering", "unknown")
_ACTIVE_STATES = ("submitting", "queued", "running", "delivering")


class SqliteJournal:
    """`reelgen.journal.Journal` in one SQLite file."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.location = str(db.path)

    def _ready(self) -> Database:
        self._db.ensure("journal", _SCHEMA)
        return self._db

    @staticmethod
    def _load(text: str) -> JournalEntry:
        from ..journal import entry_from_dict

        return entry_from_dict(json.loads(text))

    @staticmethod
    def _write(db: sqlite3.Connection, entry: JournalEntry, *, insert: bool) -> None:
        from ..journal import entry_to_dict

        row = (
            entry.key,
            entry.state,
            int(entry.shared),
            entry.provider,
            entry.task_id,
            entry.submitted_at,
            entry.updated_at,
            json.dumps(entry_to_dict(entry), allow_nan=False),
        )
        if insert:
            db.execute(
                "INSERT INTO journal (key, state, shared, provider, task_id, submitted_at, updated_at, data, id) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (*row, entry.id),
            )
        else:
            db.execute(
                "UPDATE journal SET key=?, state=?, shared=?, provider=?, task_id=?, submitted_at=?, updated_at=?, "
                "data=? WHERE id=?",
                (*row, entry.id),
            )

    def open(self, entry: JournalEntry, *, force: bool = False) -> Opened:
        from ..journal import Opened

        states = _ACTIVE_STATES if force else _OPEN_STATES
        with self._ready().transaction() as db:
            if entry.shared:
                marks = ",".join("?" * len(states))
                row = db.execute(
                    f"SELECT data FROM journal WHERE key = ? AND shared = 1 AND state IN ({marks}) "
                    "ORDER BY submitted_at DESC LIMIT 1",
                    (entry.key, *states),
                ).fetchone()
                if row is not None:
                    return Opened(self._load(row[0]), created=False)
            self._write(db, entry, insert=True)
        return Opened(entry, created=True)

    def _row(self, db: sqlite3.Connection, ref: str) -> JournalEntry | None:
        from ..journal import is_entry_id, parse_job_id

        if is_entry_id(ref):
            row = db.execute("SELECT data FROM journal WHERE id = ?", (ref,)).fetchone()
        else:
            provider, task_id = parse_job_id(ref)
            row = db.execute(
                "SELECT data FROM journal WHERE provider = ? AND task_id = ? ORDER BY submitted_at DESC LIMIT 1",
                (provider, task_id),
            ).fetchone()
        return self._load(row[0]) if row is not None else None

    def get(self, ref: str) -> JournalEntry | None:
        with self._ready().transaction() as db:
            return self._row(db, ref)

    def update(self, entry_id: str, *, expect_owner: Owner | None = None, **changes: Any) -> JournalEntry | None:
        import attrs

        with self._ready().transaction() as db:
            entry = self._row(db, entry_id)
            if entry is None:
                return None
            if expect_owner is not None and entry.owner != expect_owner:
                return None
            changes.setdefault("updated_at", time.time())
            updated = attrs.evolve(entry, **changes)
            self._write(db, updated, insert=False)
            return updated

    def adopt(self, entry_id: str, expected: Owner | None, new: Owner) -> JournalEntry | None:
        import attrs

        with self._ready().transaction() as db:
            entry = self._row(db, entry_id)
            if entry is None or entry.owner != expected:
                return None
            now = time.time()
            adopted = attrs.evolve(entry, owner=new, heartbeat=now, updated_at=now)
            self._write(db, adopted, insert=False)
            return adopted

    def active_for(self, key: str) -> JournalEntry | None:
        with self._ready().transaction() as db:
            marks = ",".join("?" * len(_OPEN_STATES))
            row = db.execute(
                f"SELECT data FROM journal WHERE key = ? AND shared = 1 AND state IN ({marks}) "
                "ORDER BY submitted_at DESC LIMIT 1",
                (key, *_OPEN_STATES),
            ).fetchone()
        return self._load(row[0]) if row is not None else None

    def list(self, *, states: Iterable[str] | None = None, limit: int | None = None) -> list[JournalEntry]:
        query = "SELECT data FROM journal"
        wanted = list(states) if states is not None else None
        params: list[Any] = []
        if wanted is not None:
            query += f" WHERE state IN ({','.join('?' * len(wanted))})"
            params += wanted
        query += " ORDER BY submitted_at DESC"
        if limit is not None:
            query += " LIMIT ?"
            params.append(int(limit))
        with self._ready().transaction() as db:
            rows = db.execute(query, params).fetchall()
        return [self._load(row[0]) for row in rows]

    def claimed(self, provider: str, task_ids: Iterable[str]) -> set[str]:
        ids = list(task_ids)
        if not ids:
            return set()
        with self._ready().transaction() as db:
            rows = db.execute(
                f"SELECT task_id FROM journal WHERE provider = ? AND task_id IN ({','.join('?' * len(ids))})",
                (provider, *ids),
            ).fetchall()
        return {row[0] for row in rows}


_journals: dict[Path, SqliteJournal] = {}
_lock = threading.Lock()


def _database(url: str) -> Database:
    from .._sqlite import database, sqlite_path

    path = sqlite_path(url, setting="jobs.url")
    return database(path, what="job journal", fix=_FIX.format(path=path))


def open_journal(url: str) -> SqliteJournal:
    """The journal in the SQLite file at `url`; one instance per file per process."""
    db = _database(url)
    with _lock:
        journal = _journals.get(db.path)
        if journal is None:
            journal = _journals[db.path] = SqliteJournal(db)
        return journal


def timings_for(config: Config) -> TimingStore | None:
    """Past generation times, kept beside the journal (None when jobs.url is off or not SQLite)."""
    from .._timings import TimingStore
    from ..config import is_disabled

    url = config.jobs.url
    if is_disabled(url) or ("://" in url and not url.startswith("sqlite:///")):
        return None
    return TimingStore(_database(url))


@hookimpl(trylast=True)
def reelgen_journal(config: Config) -> SqliteJournal | None:
    from ..config import is_disabled

    url = config.jobs.url
    if is_disabled(url):
        return None
    if "://" in url and not url.startswith("sqlite:///"):
        return None  # another plugin's URL (e.g. redis://); if none answers, get_journal says so
    return open_journal(url)
