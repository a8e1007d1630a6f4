"""The job journal in Redis (`reelgen.journal.Journal`): every machine's jobs, single-flight across them.

Keys, under `NAMESPACE:journal:`:

* `entry:ID`: a hash with the whole entry as cattrs JSON (`data`) and the fields the
  scripts look at (`state`, `key`, `shared`, `provider`, `task_id`);
* `key:CACHE_KEY`: a sorted set of the entries for that cache key that are still open
  (active or `unknown`), by submit time: what single-flight looks at;
* `task:PROVIDER`: task id -> entry id; `all` and `state:STATE`: entry ids by submit time.

`open` is one Lua script (look for an open shared entry of the key, else write the new
one and its indexes), so two machines sending the same request at the same instant get
one entry and one paid task. `update` and `adopt` are compare-and-set through
`WATCH`/`MULTI` on the entry. Entries hold nothing secret (see `reelgen.journal`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._redis import RedisUnavailable, client_for, guarded, safe_url

if TYPE_CHECKING:
    from ..journal import JournalEntry, Opened, Owner

__all__ = ["RedisJournal", "redis_journal"]

_OPEN_STATES = ("submitting", "queued", "running", "delivering", "unknown")
_ACTIVE_STATES = ("submitting", "queued", "running", "delivering")

# ARGV: ns, id, key, shared, open states (comma-separated), data, state, provider, task_id, submitted_at
_OPEN = """
local ns, id, key, shared = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local wanted = {}
for state in string.gmatch(ARGV[5], '[^,]+') do wanted[state] = true end
local by_key = ns .. ':journal:key:' .. key
if shared == '1' then
  for _, other in ipairs(redis.call('ZREVRANGE', by_key, 0, -1)) do
    local fields = redis.call('HMGET', ns .. ':journal:entry:' .. other, 'state', 'shared', 'data')
    if fields[3] and fields[2] == '1' and wanted[fields[1]] then return {0, fields[3]} end
  end
end
local state, provider, task, at = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
redis.call('HSET', ns .. ':journal:entry:' .. id, 'data', ARGV[6], 'state', state, 'key', key,
           'shared', shared, 'provider', provider, 'task_id', task)
if state == 'submitting' or state == 'queued' or state == 'running' or state == 'delivering' or state == 'unknown' then
  redis.call('ZADD', by_key, at, id)
end
redis.call('ZADD', ns .. ':journal:all', at, id)
redis.call('ZADD', ns .. ':journal:state:' .. state, at, id)
if task ~= '' then redis.call('HSET', ns .. ':journal:task:' .. provider, task, id) end
return {1, ARGV[6]}
"""


def _load(text: str) -> JournalEntry:
    from ..journal import entry_from_dict

    return entry_from_dict(json.loads(text))


def _dump(entry: JournalEntry) -> str:
    from ..journal import entry_to_dict

    return json.dumps(entry_to_dict(entry), allow_nan=False)


class RedisJournal:
    """`reelgen.journal.Journal` in one Redis, under `namespace`."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url = url
        self.namespace = namespace
        self.location = f"{safe_url(url)} ({namespace})"
        self._open_script: Any = None

    # -- plumbing --------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.namespace, "journal", *parts))

    def _client(self) -> Any:
        # Any: redis-py types every sync call as "Awaitable | value"; these are all sync.
        return client_for(self.url, check=False)

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        from ..journal import JournalError

        try:
            with guarded(self.url, doing):
                yield
        except RedisUnavailable as exc:
            raise JournalError(f"the job journal in {self.location} is unreachable: {exc}") from exc

    def _write(self, pipe: Any, old: JournalEntry | None, new: JournalEntry) -> None:
        """Queue the writes that store `new` (replacing `old`) and keep the indexes right."""
        entry_key = self._key("entry", new.id)
        pipe.hset(
            entry_key,
            mapping={
                "data": _dump(new),
                "state": new.state,
                "key": new.key,
                "shared": "1" if new.shared else "0",
                "provider": new.provider,
                "task_id": new.task_id or "",
            },
        )
        if old is None or old.state != new.state:
            if old is not None:
                pipe.zrem(self._key("state", old.state), new.id)
            pipe.zadd(self._key("state", new.state), {new.id: new.submitted_at})
        if old is not None and old.key != new.key:
            pipe.zrem(self._key("key", old.key), new.id)
        if new.state in _OPEN_STATES:
            pipe.zadd(self._key("key", new.key), {new.id: new.submitted_at})
        else:
            pipe.zrem(self._key("key", new.key), new.id)
        pipe.zadd(self._key("all"), {new.id: new.submitted_at})
        if new.task_id:
            pipe.hset(self._key("task", new.provider), new.task_id, new.id)

    def _resolve(self, client: Any, ref: str) -> str | None:
        from ..journal import is_entry_id, parse_job_id

        if is_entry_id(ref):
            return ref
        provider, task_id = parse_job_id(ref)
        found = client.hget(self._key("task", provider), task_id)
        return str(found) if found is not None else None

    def _compare_and_set(self, ref: str, change: Any) -> JournalEntry | None:
        """Read the entry, let `change(entry)` return the new one (or None to leave it), write it
        unless another writer changed the entry meanwhile (then read again and retry)."""
        import redis

        with self._guard("update the job journal in"):
            client = self._client()
            entry_id = self._resolve(client, ref)
            if entry_id is None:
                return None
            entry_key = self._key("entry", entry_id)
            with client.pipeline() as pipe:
                while True:
                    try:
                        pipe.watch(entry_key)
                        raw = pipe.hget(entry_key, "data")
                        if raw is None:
                            pipe.unwatch()
                            return None
                        entry = _load(raw)
                        updated = change(entry)
                        if updated is None:
                            pipe.unwatch()
                            return None
                        pipe.multi()
                        self._write(pipe, entry, updated)
                        pipe.execute()
                        return updated  # type: ignore[no-any-return]
                    except redis.WatchError:
                        continue

    # -- the Journal protocol --------------------------------------------------------

    def open(self, entry: JournalEntry, *, force: bool = False) -> Opened:
        from ..journal import Opened

        states = _ACTIVE_STATES if force else _OPEN_STATES
        data = _dump(entry)
        with self._guard("write the job journal in"):
            if self._open_script is None:
                self._open_script = self._client().register_script(_OPEN)
            created, text = self._open_script(
                keys=[],
                args=[
                    self.namespace,
                    entry.id,
                    entry.key,
                    "1" if entry.shared else "0",
                    ",".join(states),
                    data,
                    entry.state,
                    entry.provider,
                    entry.task_id or "",
                    repr(float(entry.submitted_at)),
                ],
            )
        if int(created):
            return Opened(entry, created=True)
        return Opened(_load(text), created=False)

    def get(self, ref: str) -> JournalEntry | None:
        with self._guard("read the job journal in"):
            client = self._client()
            entry_id = self._resolve(client, ref)
            raw = client.hget(self._key("entry", entry_id), "data") if entry_id is not None else None
        return _load(raw) if raw is not None else None

    def update(self, entry_id: str, *, expect_owner: Owner | None = None, **changes: Any) -> JournalEntry | None:
        import attrs

        def change(entry: JournalEntry) -> JournalEntry | None:
            if expect_owner is not None and entry.owner != expect_owner:
                return None
            return attrs.evolve(entry, **{"updated_at": time.time(), **changes})

        return self._compare_and_set(entry_id, change)

    def adopt(self, entry_id: str, expected: Owner | None, new: Owner) -> JournalEntry | None:
        import attrs

        def change(entry: JournalEntry) -> JournalEntry | None:
            if entry.owner != expected:
                return None
            now = time.time()
            return attrs.evolve(entry, owner=new, heartbeat=now, updated_at=now)

        return self._compare_and_set(entry_id, change)

    def active_for(self, key: str) -> JournalEntry | None:
        with self._guard("read the job journal in"):
            client = self._client()
            for entry_id in client.zrevrange(self._key("key", key), 0, -1):
                fields = client.hmget(self._key("entry", entry_id), ["state", "shared", "data"])
                if fields[2] is not None and fields[1] == "1" and fields[0] in _OPEN_STATES:
                    return _load(fields[2])
        return None

    def list(self, *, states: Iterable[str] | None = None, limit: int | None = None) -> list[JournalEntry]:
        stop = -1 if limit is None else max(0, int(limit)) - 1
        if limit is not None and limit <= 0:
            return []
        with self._guard("read the job journal in"):
            client = self._client()
            if states is None:
                ids = [str(i) for i in client.zrevrange(self._key("all"), 0, stop)]
            else:
                scored: list[tuple[float, str]] = []
                for state in dict.fromkeys(states):
                    scored += [
                        (float(score), str(i))
                        for i, score in client.zrevrange(self._key("state", state), 0, stop, withscores=True)
                    ]
                scored.sort(reverse=True)
                ids = [i for _, i in (scored if limit is None else scored[:limit])]
            with client.pipeline(transaction=False) as pipe:
                for entry_id in ids:
                    pipe.hget(self._key("entry", entry_id), "data")
                rows = pipe.execute()
        return [_load(row) for row in rows if row is not None]

    def claimed(self, provider: str, task_ids: Iterable[str]) -> set[str]:
        ids = list(task_ids)
        if not ids:
            return set()
        with self._guard("read the job journal in"):
            found = self._client().hmget(self._key("task", provider), ids)
        return {task for task, entry_id in zip(ids, found, strict=True) if entry_id is not None}


_journals: dict[tuple[str, str], RedisJournal] = {}
_lock = threading.Lock()


def redis_journal(url: str, namespace: str) -> RedisJournal:
    """The process's journal in (`url`, `namespace`); checks Redis answers first (before paying)."""
    from ..journal import JournalError

    try:
        client_for(url)
    except RedisUnavailable as exc:
        raise JournalError(str(exc)) from exc
    with _lock:
        journal = _journals.get((url, namespace))
        if journal is None:
            journal = _journals[(url, namespace)] = RedisJournal(url, namespace)
        return journal
