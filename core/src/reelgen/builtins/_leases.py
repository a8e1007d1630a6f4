"""Concurrency permits as leases in a SQLite table, shared by every process on one machine.

A row is one slot in use: who holds it (host and pid, for people), the job it covers once
bound, and when it expires unless renewed. A slot counts while its lease has not expired;
an expired row is deleted (and logged) by the next caller that needs a slot. Each change
is one `BEGIN IMMEDIATE` transaction, so "count, then insert if below the limit" is atomic
across processes. Times are `time.time()`: the file outlives processes (and reboots).
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
import uuid

import attrs

from ._sqlitefile import SqliteFile

__all__ = ["ENTRY_PREFIX", "Grant", "LeaseTable", "covered", "holder_name"]

log = logging.getLogger("reelgen.governor")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    token TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    job_id TEXT,
    holder TEXT NOT NULL,
    acquired_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_account ON leases (account, expires_at);
CREATE INDEX IF NOT EXISTS leases_job ON leases (account, job_id);
"""


#: How a permit taken for a journal entry, before its create named a job, is named.
ENTRY_PREFIX = "entry:"


def covered(job_id: str | None) -> str:
    """What a lease covers, for log lines."""
    if not job_id:
        return "a submission that never bound a job"
    if job_id.startswith(ENTRY_PREFIX):
        return f"the create of journal entry {job_id[len(ENTRY_PREFIX) :]} (it never bound a job)"
    return f"job {job_id}"


def holder_name() -> str:
    """This process, as lease rows name it: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


@attrs.frozen
class Grant:
    """The answer to one try: a token (None when the account is full), the slots in use,
    and when the soonest lease expires (None if none is held)."""

    token: str | None
    in_use: int
    next_expiry: float | None


class LeaseTable:
    """The `leases` table in `target` (a path, or a `file:` URI with `uri=True`)."""

    def __init__(self, target: str, *, uri: bool = False) -> None:
        self.target = target
        self._file = SqliteFile(target, uri=uri, schema=_SCHEMA)

    def close(self) -> None:
        self._file.close()

    @staticmethod
    def _reclaim(conn: sqlite3.Connection, account: str, now: float) -> None:
        expired = conn.execute(
            "SELECT token, job_id, holder FROM leases WHERE account = ? AND expires_at <= ?", (account, now)
        ).fetchall()
        for _token, job_id, holder in expired:
            # Not silently: the holder stopped renewing (it died, or polls too rarely).
            log.warning(
                "reclaimed the %s slot of %s (held by %s): its lease expired without renewal or release",
                account,
                covered(job_id),
                holder,
            )
        if expired:
            conn.execute("DELETE FROM leases WHERE account = ? AND expires_at <= ?", (account, now))

    def try_acquire(self, account: str, limit: int, lease: float, holder: str, name: str | None = None) -> Grant:
        """A slot for `account` if fewer than `limit` are held. With `name` (the permit of a
        journal entry, `ENTRY_PREFIX` + its id), a live lease of that name is taken over
        instead (its holder died mid-create, and whoever drives the entry now holds its slot)."""
        # A plain read first: waiters look often, and only one that may succeed takes the
        # write lock (in WAL mode a reader never blocks the holders renewing and releasing).
        with self._file.lock:
            in_use, soonest = (
                self._file.db()
                .execute("SELECT COUNT(*), MIN(expires_at) FROM leases WHERE account = ?", (account,))
                .fetchone()
            )
        if name is None and in_use >= limit and soonest is not None and soonest > time.time():
            return Grant(None, int(in_use), soonest)
        with self._file.write() as conn:
            now = time.time()
            self._reclaim(conn, account, now)
            held = None
            if name is not None:
                held = conn.execute(
                    "SELECT token FROM leases WHERE account = ? AND job_id = ? LIMIT 1", (account, name)
                ).fetchone()
                if held is not None:
                    conn.execute(
                        "UPDATE leases SET holder = ?, expires_at = MAX(expires_at, ?) WHERE token = ?",
                        (holder, now + lease, held[0]),
                    )
                    log.info("took over the %s slot of %s", account, covered(name))
            in_use, soonest = conn.execute(
                "SELECT COUNT(*), MIN(expires_at) FROM leases WHERE account = ?", (account,)
            ).fetchone()
            if held is not None:
                return Grant(str(held[0]), int(in_use), soonest)
            if in_use >= limit:
                return Grant(None, int(in_use), soonest)
            token = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO leases (token, account, job_id, holder, acquired_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (token, account, name, holder, now, now + lease),
            )
            return Grant(token, int(in_use) + 1, min(soonest, now + lease) if soonest is not None else now + lease)

    def bind(self, token: str, job_id: str, lease: float) -> bool:
        with self._file.write() as conn:
            changed = conn.execute(
                "UPDATE leases SET job_id = ?, expires_at = ? WHERE token = ?", (job_id, time.time() + lease, token)
            ).rowcount
        return bool(changed)

    def renew(self, token: str, lease: float) -> bool:
        with self._file.write() as conn:
            changed = conn.execute(
                "UPDATE leases SET expires_at = MAX(expires_at, ?) WHERE token = ?", (time.time() + lease, token)
            ).rowcount
        return bool(changed)

    def renew_job(self, account: str, job_id: str, lease: float, holder: str, name: str | None = None) -> int:
        """Extend the leases bound to `job_id`. With none, take over the lease named `name` (the
        permit its journal entry's create was sent under, by a holder that died before binding
        it), else bind a new one to it (over the limit if need be: the job runs either way, and
        an uncounted job would let the account over-subscribe). Returns the leases renewed or
        taken over (0: one was added)."""
        with self._file.write() as conn:
            now = time.time()
            renewed = conn.execute(
                "UPDATE leases SET expires_at = MAX(expires_at, ?) WHERE account = ? AND job_id = ?",
                (now + lease, account, job_id),
            ).rowcount
            if not renewed and name is not None:
                renewed = conn.execute(
                    "UPDATE leases SET job_id = ?, holder = ?, expires_at = MAX(expires_at, ?) "
                    "WHERE account = ? AND job_id = ? AND expires_at > ?",
                    (job_id, holder, now + lease, account, name, now),
                ).rowcount
                if renewed:
                    log.info("job %s took over the %s slot of %s", job_id, account, covered(name))
            if not renewed:
                conn.execute(
                    "INSERT INTO leases (token, account, job_id, holder, acquired_at, expires_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (uuid.uuid4().hex, account, job_id, holder, now, now + lease),
                )
            return int(renewed)

    def release(self, token: str) -> bool:
        with self._file.write() as conn:
            return bool(conn.execute("DELETE FROM leases WHERE token = ?", (token,)).rowcount)

    def release_job(self, account: str, job_id: str) -> int:
        with self._file.write() as conn:
            return int(conn.execute("DELETE FROM leases WHERE account = ? AND job_id = ?", (account, job_id)).rowcount)

    def in_use(self, account: str) -> int:
        with self._file.lock:
            (count,) = (
                self._file.db()
                .execute("SELECT COUNT(*) FROM leases WHERE account = ? AND expires_at > ?", (account, time.time()))
                .fetchone()
            )
        return int(count)
