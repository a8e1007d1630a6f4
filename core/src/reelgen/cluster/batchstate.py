"""What Redis knows about a queued batch: which rows were sent, their jobs, their outcome lines.

Under `NAMESPACE:batch:ID:` (hashes keyed by row id):

* `sent`: the row was enqueued (`HSETNX`: enqueuing the same batch again sends nothing twice);
* `job`: the row's job reference, once its job exists (a redelivered submit goes to checking);
* `seq`: the number of the row's one live check message (an older duplicate drops itself,
  so redeliveries never multiply the checks);
* `done`: the row's results-file line, written once (`HSETNX`: the first outcome wins);
* `restarts`: how often the row started over because its job was proved never created;
* `due`: when the row's next step should have started at the latest (unix time): a row
  past it has lost its chain of messages (a worker killed between scheduling the next
  step and sending it, a message that ran out of retries), and the follower sends it again;
* `submitting:ROW`: held (with a time to live) while one worker submits the row, so two
  copies of its submit message never run at once.

The follower (`reelgen batch --queue`) copies `done` lines into the results file.
"""

from __future__ import annotations

import json
from typing import Any

from ._redis import client_for, guarded

__all__ = ["BatchState", "WaitingRoom"]


class BatchState:
    def __init__(self, url: str, namespace: str, batch: str) -> None:
        self.url = url
        self.batch = batch
        self._prefix = f"{namespace}:batch:{batch}:"

    def _client(self) -> Any:
        return client_for(self.url, check=False)

    def _key(self, what: str) -> str:
        return self._prefix + what

    def mark_sent(self, row: str) -> bool:
        """True the first time `row` is marked (send it then), False if it was sent before."""
        with guarded(self.url, "use the queue in"):
            return bool(self._client().hsetnx(self._key("sent"), row, "1"))

    def unsend(self, row: str) -> None:
        """Forget that `row` was sent (its message could not be enqueued)."""
        with guarded(self.url, "use the queue in"):
            self._client().hdel(self._key("sent"), row)

    def job(self, row: str) -> str | None:
        with guarded(self.url, "use the queue in"):
            value = self._client().hget(self._key("job"), row)
        return str(value) if value is not None else None

    def set_job(self, row: str, ref: str) -> None:
        with guarded(self.url, "use the queue in"):
            self._client().hset(self._key("job"), row, ref)

    def seq(self, row: str) -> int:
        with guarded(self.url, "use the queue in"):
            value = self._client().hget(self._key("seq"), row)
        return int(value) if value is not None else 0

    def advance(self, row: str, seq: int) -> bool:
        """Move the row's live check from `seq` to `seq + 1` (compare-and-set). False: stale."""
        script = """
        local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
        if current ~= tonumber(ARGV[2]) then return 0 end
        redis.call('HSET', KEYS[1], ARGV[1], current + 1)
        return 1
        """
        with guarded(self.url, "use the queue in"):
            return bool(self._client().eval(script, 1, self._key("seq"), row, seq))

    def restart(self, row: str, seq: int, *, limit: int) -> bool:
        """The row's job proved never created: forget it so a new submit may run (at most `limit`
        times per row). Compare-and-set on the live check number; False: stale or too many."""
        script = """
        if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') ~= tonumber(ARGV[2]) then return 0 end
        if redis.call('HINCRBY', KEYS[3], ARGV[1], 1) > tonumber(ARGV[3]) then return 0 end
        redis.call('HSET', KEYS[1], ARGV[1], 0)
        redis.call('HDEL', KEYS[2], ARGV[1])
        return 1
        """
        keys = (self._key("seq"), self._key("job"), self._key("restarts"))
        with guarded(self.url, "use the queue in"):
            return bool(self._client().eval(script, 3, *keys, row, seq, limit))

    def claim_submit(self, row: str, *, ttl: float) -> str | None:
        """A token if this worker may submit `row` now (no other live copy is submitting it).

        The claim names its holder: a holder on this machine whose process is gone (a worker
        killed with `kill -9`) loses it at once; one elsewhere when `ttl` runs out.
        """
        import uuid

        from ..journal import Owner

        me = Owner.current()
        token = json.dumps({"token": uuid.uuid4().hex, "host": me.host, "pid": me.pid, "started": me.started})
        key = self._key(f"submitting:{row}")
        with guarded(self.url, "use the queue in"):
            client = self._client()
            if client.set(key, token, nx=True, px=int(ttl * 1000)):
                return token
            held = client.get(key)
            if held is None or not _holder_dead(held):
                return None
            steal = """
            if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
            redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
            return 1
            """
            return token if client.eval(steal, 1, key, held, token, int(ttl * 1000)) else None

    def release_submit(self, row: str, token: str) -> None:
        script = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """
        with guarded(self.url, "use the queue in"):
            self._client().eval(script, 1, self._key(f"submitting:{row}"), token)

    def finish(self, row: str, line: dict[str, Any]) -> bool:
        """Record the row's outcome line; False if another outcome was recorded first."""
        with guarded(self.url, "use the queue in"):
            return bool(self._client().hsetnx(self._key("done"), row, json.dumps(line, allow_nan=False)))

    def done(self) -> dict[str, dict[str, Any]]:
        with guarded(self.url, "use the queue in"):
            raw = self._client().hgetall(self._key("done"))
        return {row: json.loads(value) for row, value in raw.items()}

    def touch(self, row: str, due: float) -> None:
        """The row's next step is scheduled: it should have started by `due` (unix time)."""
        with guarded(self.url, "use the queue in"):
            self._client().hset(self._key("due"), row, repr(float(due)))

    def overdue(self, rows: list[str], now: float) -> list[str]:
        """Rows of `rows` without an outcome whose next step is past due (their messages were lost)."""
        if not rows:
            return []
        with guarded(self.url, "use the queue in"):
            client = self._client()
            dues = client.hmget(self._key("due"), rows)
            finished = client.hmget(self._key("done"), rows)
        return [
            row
            for row, due, line in zip(rows, dues, finished, strict=True)
            if line is None and due is not None and float(due) < now
        ]

    def is_done(self, row: str) -> bool:
        with guarded(self.url, "use the queue in"):
            return bool(self._client().hexists(self._key("done"), row))


def _holder_dead(held: str) -> bool:
    import time

    from ..journal import Owner

    try:
        data = json.loads(held)
        holder = Owner(host=data["host"], pid=int(data["pid"]), started=data.get("started"))
    except (ValueError, KeyError, TypeError):
        return False
    return not holder.is_alive(time.time())


class WaitingRoom:
    """Rows waiting for a slot of one account (`NAMESPACE:waiting:ACCOUNT`, oldest first).

    A submit that finds the account full parks its row here; whoever sees one of the
    account's jobs end takes the oldest parked row and sends its submit at once, so a freed
    slot is taken without rows polling for it. (Parked rows also come back on their own
    after a while, in case the one who should wake them dies: a row parked twice, or woken
    twice, is harmless, since a row with a job is never submitted again.)
    """

    def __init__(self, url: str, namespace: str, account: str) -> None:
        self.url = url
        self._key = f"{namespace}:waiting:{account}"

    def _client(self) -> Any:
        return client_for(self.url, check=False)

    def park(self, task: dict[str, Any], *, at: float) -> None:
        with guarded(self.url, "use the queue in"):
            self._client().zadd(self._key, {json.dumps(task, sort_keys=True): at}, nx=True)

    def take(self) -> dict[str, Any] | None:
        with guarded(self.url, "use the queue in"):
            popped = self._client().zpopmin(self._key)
        return json.loads(popped[0][0]) if popped else None

    def __len__(self) -> int:
        with guarded(self.url, "use the queue in"):
            return int(self._client().zcard(self._key))
