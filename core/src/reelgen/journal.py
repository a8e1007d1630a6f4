"""The job journal: every paid generation, written down before the provider is paid.

An entry is opened (state `submitting`) *before* the create is sent, and moves on as the
job does::

    submitting -> queued -> running -> delivering -> succeeded
         |           \\________\\__________\\______-> failed | cancelled
         +-> unknown (the create's reply was lost: a billed task may exist)
                                  delivering -> delivery_failed (paid, not yet stored)

`unknown` and `delivery_failed` are recoverable: `reelgen jobs resume ID` (or
`reelgen.resume(ID)`) reconciles or finishes them. Nothing in an entry is secret: the
request is sanitized (an inline or local image is its content hash), the account is a
non-reversible id, the provider job's `data` is JSON the provider chose to persist.

Implementations (the built-in SQLite one in `reelgen.builtins.journal`, a Redis one in
`reelgen.cluster`) are found through the `reelgen_journal(config)` hook; `get_journal`
returns the one in effect, or None when `jobs.url` is disabled.

The Protocol is synchronous (a local database answers in microseconds; the core calls it
from a thread where it might block). Its promises:

- `open(entry)` is atomic single-flight: when `entry.shared` and an entry for the same
  cache key is *active* or `unknown` (and shared), that entry is returned and nothing is
  written; otherwise `entry` is written and returned. `Opened.created` says which.
  `force=True` (the caller's `--force`) ignores `unknown` entries, still attaches to active ones.
- `update(id, expect_owner=..., **changes)` changes fields of one entry; with
  `expect_owner` it is a compare-and-set on the owner (returns None if the owner differs).
- `adopt(id, expected, new)` is a compare-and-set of the owner: exactly one adopter wins.
- `get(ref)` takes an entry id (`j-...`) or a job id (`provider:task_id`).
- Failures raise `JournalError` (a `ConfigError` for a file that is not a database, naming
  the file and the fix). The core refuses to pay when the entry cannot be written.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

import attrs

from .contract import VideoResult
from .errors import ReelgenError, ValidationError

if TYPE_CHECKING:
    from .config import Config

__all__ = [
    "ACTIVE_STATES",
    "RECOVERABLE_STATES",
    "STALE_AFTER",
    "STATES",
    "TERMINAL_STATES",
    "EntryState",
    "Journal",
    "JournalEntry",
    "JournalError",
    "Opened",
    "Owner",
    "entry_from_dict",
    "entry_to_dict",
    "get_journal",
    "is_entry_id",
    "new_entry_id",
    "parse_job_id",
    "validate_ref",
]

EntryState = Literal[
    "submitting",
    "queued",
    "running",
    "delivering",
    "succeeded",
    "failed",
    "cancelled",
    "unknown",
    "delivery_failed",
]
STATES: tuple[str, ...] = get_args(EntryState)
#: A job in one of these states is in flight: an identical request attaches to it.
ACTIVE_STATES: frozenset[str] = frozenset({"submitting", "queued", "running", "delivering"})
#: Finished for good.
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
#: Paid or possibly paid, and not finished: `jobs resume` picks these up.
RECOVERABLE_STATES: frozenset[str] = frozenset({"unknown", "delivery_failed"})

#: A heartbeat older than this (seconds) means the owner on another host is gone.
STALE_AFTER = 120.0
#: How often an owner refreshes its heartbeat while it waits on a job (seconds).
HEARTBEAT_EVERY = 15.0

_PROVIDER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TASK_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ENTRY_RE = re.compile(r"j-[0-9a-f]{20}")


class JournalError(ReelgenError):
    """The journal could not be read or written. Nothing is paid when the entry cannot be written."""

    exit_code = 2


def new_entry_id() -> str:
    """A permanent id for an entry that has no task id yet (`j-` and 20 hex digits)."""
    return "j-" + uuid.uuid4().hex[:20]


def is_entry_id(ref: str) -> bool:
    return bool(_ENTRY_RE.fullmatch(ref))


def parse_job_id(job_id: str) -> tuple[str, str]:
    """Split `provider:task_id`, refusing anything else (`bailian_wan:../../etc` included)."""
    if not isinstance(job_id, str) or ":" not in job_id:
        raise ValidationError(f"job id {job_id!r} must be 'provider:task_id' (or an entry id 'j-...')", field="job_id")
    provider, task_id = job_id.split(":", 1)
    if not _PROVIDER_RE.fullmatch(provider):
        raise ValidationError(f"job id {job_id!r}: {provider!r} is not a provider name", field="job_id")
    if not _TASK_RE.fullmatch(task_id):
        raise ValidationError(
            f"job id {job_id!r}: the task id must be 1-128 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)",
            field="job_id",
        )
    return provider, task_id


def validate_ref(ref: str) -> str:
    """Check a job reference (entry id or job id); return it unchanged."""
    if isinstance(ref, str) and is_entry_id(ref):
        return ref
    parse_job_id(ref)
    return ref


def _stat(pid: int) -> list[bytes] | None:
    """`/proc/PID/stat` from field 3 (state) on, or None where there is none (not Linux, gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses, so split after it.
    return stat[stat.rfind(b")") + 2 :].split()


def _start_of(fields: list[bytes] | None) -> float | None:
    """Field 22, the start time in clock ticks since boot."""
    try:
        return float(fields[19]) if fields is not None else None
    except (IndexError, ValueError):
        return None


def _process_start(pid: int) -> float | None:
    """When `pid` started, in clock ticks since boot (Linux), or None where unknown."""
    return _start_of(_stat(pid))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


@attrs.frozen(kw_only=True)
class Owner:
    """The process that drives a job: host, pid and the pid's start time (pids get reused)."""

    host: str
    pid: int
    started: float | None = None

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(host=socket.gethostname(), pid=pid, started=_process_start(pid))

    def is_alive(self, heartbeat: float, *, now: float | None = None) -> bool:
        """Is this owner still there? Same host: its pid runs and started when it did.
        Another host: its heartbeat is fresh (younger than `STALE_AFTER`)."""
        if self.host != socket.gethostname():
            return ((now if now is not None else time.time()) - heartbeat) < STALE_AFTER
        if not _pid_alive(self.pid):
            return False
        fields = _stat(self.pid)
        if fields and fields[0] in (b"Z", b"X"):
            # Killed but not yet reaped (its parent died too, and nothing reaps orphans):
            # signals still reach the pid, yet it will never drive a job again.
            return False
        return self.started is None or _start_of(fields) == self.started


@attrs.frozen(kw_only=True)
class JournalEntry:
    """One generation, as the journal knows it."""

    #: Permanent id: `j-` + 20 hex digits. `job_id` (`provider:task_id`) finds it too.
    id: str
    provider: str
    model: str
    #: The cache key of the request (single-flight matches on it; resume caches under it).
    key: str
    state: EntryState
    #: The sanitized request (`reelgen._store.sanitized_request`): JSON, image as its hash.
    request: dict[str, Any] = attrs.field(factory=dict)
    #: The account's non-reversible id (`reelgen.governor.account_for(provider).id`).
    account: str = ""
    #: False for `use_cache=False` (a new take): never attached to, never cached.
    shared: bool = True
    #: Unix time the entry was opened (before the governor's wait and the create).
    submitted_at: float = 0.0
    #: Unix time the (last) create was sent; None while waiting for a slot or a token.
    sent_at: float | None = None
    updated_at: float = 0.0
    finished_at: float | None = None
    owner: Owner | None = None
    #: Unix time of the owner's last sign of life.
    heartbeat: float = 0.0
    task_id: str | None = None
    #: The provider job (`ProviderJob` unstructured), once the create answered.
    job: dict[str, Any] | None = None
    result: VideoResult | None = None
    error: str | None = None
    #: For `unknown`: task ids the provider's task list showed as possible matches.
    candidates: list[str] = attrs.field(factory=list)
    #: The task was adopted from the provider's task list (not named by our create's reply):
    #: its echoed prompt is checked before its video is delivered, in whichever process.
    adopted: bool = False
    #: Billed usage the provider reported (e.g. {"duration": 5}).
    usage: dict[str, Any] = attrs.field(factory=dict)

    @property
    def job_id(self) -> str | None:
        """`provider:task_id` once the provider named the task."""
        return f"{self.provider}:{self.task_id}" if self.task_id else None

    @property
    def ref(self) -> str:
        """What to type after `reelgen jobs resume`: the job id, else the entry id."""
        return self.job_id or self.id

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def orphaned(self, *, now: float | None = None) -> bool:
        """True when the owner is gone (no owner, dead process, or a stale heartbeat)."""
        return self.owner is None or not self.owner.is_alive(self.heartbeat, now=now)


@attrs.frozen
class Opened:
    """What `Journal.open` did: wrote `entry` (created) or found the in-flight one for its key."""

    entry: JournalEntry
    created: bool


class Journal(Protocol):
    """Where entries live. See the module docstring for the promises each method keeps."""

    #: Where it lives, for messages (a path or URL, never a secret).
    location: str

    def open(self, entry: JournalEntry, *, force: bool = False) -> Opened: ...

    def get(self, ref: str) -> JournalEntry | None: ...

    def update(self, entry_id: str, *, expect_owner: Owner | None = None, **changes: Any) -> JournalEntry | None: ...

    def adopt(self, entry_id: str, expected: Owner | None, new: Owner) -> JournalEntry | None: ...

    def active_for(self, key: str) -> JournalEntry | None: ...

    def list(self, *, states: Iterable[str] | None = None, limit: int | None = None) -> list[JournalEntry]: ...

    def claimed(self, provider: str, task_ids: Iterable[str]) -> set[str]: ...


def entry_to_dict(entry: JournalEntry) -> dict[str, Any]:
    """An entry as JSON-ready data (cattrs), for the SQLite/Redis stores and `jobs --json`."""
    from .serialization import unstructure

    data: dict[str, Any] = unstructure(entry)
    return data


def entry_from_dict(data: Mapping[str, Any]) -> JournalEntry:
    from .serialization import structure

    return structure(dict(data), JournalEntry)


def get_journal(config: Config) -> Journal | None:
    """The journal in effect for `config` (via `reelgen_journal`), or None when `jobs.url` is off."""
    from .config import is_disabled

    if is_disabled(config.jobs.url):
        return None
    from .plugins import get_plugin_manager

    # A synchronous firstresult hook: pluggy's own calling (tryfirst/trylast/wrappers) applies.
    journal = get_plugin_manager().hook.reelgen_journal(config=config)
    if journal is None:
        raise JournalError(f"no plugin provides a job journal for jobs.url = {config.jobs.url!r}")
    return journal  # type: ignore[no-any-return]
