"""The account governor in Redis: concurrency leases and `limits` rate windows, shared by every machine.

It is the built-in `LeaseGovernor` (same waits, deadlines, `Wait` reports and release
rules) over two shared stores instead of SQLite files:

* `RedisLeases`, the lease table: per account a sorted set of permit tokens scored by
  their expiry, a hash per permit (holder, bound job) and a job -> token map. Each
  operation is one Lua script, so "reclaim the expired, count, take a slot if below the
  limit" is atomic across machines. Expiry is judged by the Redis server's clock (`TIME`),
  so machines whose clocks disagree still agree on whose lease is dead. A permit lives
  `LEASE` seconds without renewal: a holder killed with `kill -9` stops renewing, and its
  slot comes back when the lease runs out or when anyone sees its job end (`release_job`);
  never while the job may still run and be renewed by whoever follows it.
* rate windows: `limits`' own `RedisStorage` (moving window) under `NAMESPACE:limits`.

Keys: `NAMESPACE:gov:leases:ACCOUNT`, `NAMESPACE:gov:lease:TOKEN`, `NAMESPACE:gov:jobs:ACCOUNT`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any, cast

from ._redis import client_for, guarded, safe_url

if TYPE_CHECKING:
    import redis

    from ..builtins._leases import Grant, LeaseTable
    from ..builtins.governor import LeaseGovernor

__all__ = ["RedisLeases", "redis_governor"]

log = logging.getLogger("reelgen.governor")

#: How long a permit's hash outlives its lease (it is deleted with the lease; this only
#: bounds what a Redis that lost a script half-way could leave behind).
_INFO_GRACE = 24 * 3600

_PRELUDE_TEMPLATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ns = ARGV[1]
local GRACE = %d
local function leases(account) return ns .. ':gov:leases:' .. account end
local function jobs(account) return ns .. ':gov:jobs:' .. account end
local function info(token) return ns .. ':gov:lease:' .. token end
local function drop(account, token)
  local key = info(token)
  local job = redis.call('HGET', key, 'job')
  if job and redis.call('HGET', jobs(account), job) == token then redis.call('HDEL', jobs(account), job) end
  redis.call('DEL', key)
  return redis.call('ZREM', leases(account), token)
end
"""
_PRELUDE = _PRELUDE_TEMPLATE.replace("%d", str(_INFO_GRACE))

# ARGV: ns, account, limit, lease, token, holder, name ('' for none)
#   -> {granted, in_use, soonest expiry, reclaimed..., token granted}
# A named permit (a journal entry's, before its create named a job) whose lease is live is
# taken over rather than a new one taken: its holder died mid-create, and whoever drives the
# entry now holds its slot.
_ACQUIRE = (
    _PRELUDE
    + """
local account, limit, lease = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local token, holder, name = ARGV[5], ARGV[6], ARGV[7]
local reclaimed = {}
for _, old in ipairs(redis.call('ZRANGEBYSCORE', leases(account), '-inf', now)) do
  local key = info(old)
  table.insert(reclaimed, (redis.call('HGET', key, 'job') or '') .. '|' .. (redis.call('HGET', key, 'holder') or '?'))
  drop(account, old)
end
local held = name ~= '' and redis.call('HGET', jobs(account), name)
local in_use = redis.call('ZCARD', leases(account))
local first = redis.call('ZRANGE', leases(account), 0, 0, 'WITHSCORES')
local soonest = first[2]
if held and redis.call('ZSCORE', leases(account), held) then
  if tonumber(redis.call('ZSCORE', leases(account), held)) < now + lease then
    redis.call('ZADD', leases(account), 'XX', now + lease, held)
  end
  redis.call('HSET', info(held), 'holder', holder)
  redis.call('EXPIRE', info(held), math.ceil(lease) + GRACE)
  first = redis.call('ZRANGE', leases(account), 0, 0, 'WITHSCORES')
  return {1, in_use, first[2], reclaimed, held}
end
if in_use >= limit then
  return {0, in_use, soonest or '', reclaimed, ''}
end
local expires = now + lease
redis.call('ZADD', leases(account), expires, token)
redis.call('HSET', info(token), 'account', account, 'holder', holder, 'acquired', tostring(now))
redis.call('EXPIRE', info(token), math.ceil(lease) + GRACE)
if name ~= '' then
  redis.call('HSET', info(token), 'job', name)
  redis.call('HSET', jobs(account), name, token)
end
if soonest and tonumber(soonest) < expires then expires = tonumber(soonest) end
return {1, in_use + 1, tostring(expires), reclaimed, token}
"""
)

# ARGV: ns, token, job_id, lease -> 1 if bound
_BIND = (
    _PRELUDE
    + """
local token, job, lease = ARGV[2], ARGV[3], tonumber(ARGV[4])
local account = redis.call('HGET', info(token), 'account')
if not account or not redis.call('ZSCORE', leases(account), token) then return 0 end
redis.call('ZADD', leases(account), 'XX', now + lease, token)
local named = redis.call('HGET', info(token), 'job')
if named and named ~= job and redis.call('HGET', jobs(account), named) == token then
  redis.call('HDEL', jobs(account), named)
end
redis.call('HSET', info(token), 'job', job)
redis.call('EXPIRE', info(token), math.ceil(lease) + GRACE)
redis.call('HSET', jobs(account), job, token)
return 1
"""
)

# ARGV: ns, token, lease -> 1 if renewed (never shortens a lease)
_RENEW = (
    _PRELUDE
    + """
local token, lease = ARGV[2], tonumber(ARGV[3])
local account = redis.call('HGET', info(token), 'account')
if not account then return 0 end
local current = redis.call('ZSCORE', leases(account), token)
if not current then return 0 end
if tonumber(current) < now + lease then redis.call('ZADD', leases(account), 'XX', now + lease, token) end
redis.call('EXPIRE', info(token), math.ceil(lease) + GRACE)
return 1
"""
)

# ARGV: ns, account, job_id, lease, holder, new token, name ('' for none)
#   -> leases renewed or taken over (0: a lease was bound to the job)
_RENEW_JOB = (
    _PRELUDE
    + """
local account, job, lease, holder, fresh, name = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local token = redis.call('HGET', jobs(account), job)
local current = token and redis.call('ZSCORE', leases(account), token)
if not current and name ~= '' then
  -- The permit its entry's create was sent under (its holder died before binding it): the
  -- job takes it over.
  local held = redis.call('HGET', jobs(account), name)
  local score = held and redis.call('ZSCORE', leases(account), held)
  if score and tonumber(score) > now then
    redis.call('HDEL', jobs(account), name)
    redis.call('HSET', jobs(account), job, held)
    redis.call('HSET', info(held), 'job', job, 'holder', holder)
    token, current = held, score
  end
end
if current then
  if tonumber(current) < now + lease then redis.call('ZADD', leases(account), 'XX', now + lease, token) end
  redis.call('EXPIRE', info(token), math.ceil(lease) + GRACE)
  return 1
end
-- The job runs but holds no lease (its creator died before binding one, or the lease ran
-- out): count it again, over the limit if need be, so the account is never over-subscribed.
redis.call('ZADD', leases(account), now + lease, fresh)
redis.call('HSET', info(fresh), 'account', account, 'holder', holder, 'acquired', tostring(now), 'job', job)
redis.call('EXPIRE', info(fresh), math.ceil(lease) + GRACE)
redis.call('HSET', jobs(account), job, fresh)
return 0
"""
)

# ARGV: ns, token -> 1 if released
_RELEASE = (
    _PRELUDE
    + """
local token = ARGV[2]
local account = redis.call('HGET', info(token), 'account')
if not account then return 0 end
return drop(account, token)
"""
)

# ARGV: ns, account, job_id -> leases released
_RELEASE_JOB = (
    _PRELUDE
    + """
local account, job = ARGV[2], ARGV[3]
local token = redis.call('HGET', jobs(account), job)
if not token then return 0 end
return drop(account, token)
"""
)

# ARGV: ns, account -> unexpired leases
_IN_USE = (
    _PRELUDE
    + """
return redis.call('ZCOUNT', leases(ARGV[2]), '(' .. tostring(now), '+inf')
"""
)


class RedisLeases:
    """The lease table of `reelgen.builtins._leases.LeaseTable`, kept in Redis."""

    def __init__(self, url: str, namespace: str) -> None:
        self.url = url
        self.namespace = namespace
        #: For messages (never the password).
        self.target = f"{safe_url(url)} ({namespace})"
        self._scripts: dict[str, Any] = {}

    def _client(self) -> redis.Redis:
        return client_for(self.url, check=False)

    def _run(self, name: str, source: str, *args: Any) -> Any:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = self._client().register_script(source)
        with guarded(self.url, "use the governor in"):
            return script(keys=[], args=[self.namespace, *args])

    def try_acquire(self, account: str, limit: int, lease: float, holder: str, name: str | None = None) -> Grant:
        from ..builtins._leases import Grant, covered

        token = uuid.uuid4().hex
        granted, in_use, soonest, reclaimed, given = self._run(
            "acquire", _ACQUIRE, account, limit, lease, token, holder, name or ""
        )
        for item in reclaimed:
            job, _, who = str(item).partition("|")
            log.warning(
                "reclaimed the %s slot of %s (held by %s): its lease expired without renewal or release",
                account,
                covered(job),
                who,
            )
        if int(granted) and name and str(given) != token:
            log.info("took over the %s slot of %s", account, covered(name))
        expiry = float(soonest) if soonest else None
        return Grant(str(given) if int(granted) else None, int(in_use), expiry)

    def bind(self, token: str, job_id: str, lease: float) -> bool:
        return bool(self._run("bind", _BIND, token, job_id, lease))

    def renew(self, token: str, lease: float) -> bool:
        return bool(self._run("renew", _RENEW, token, lease))

    def renew_job(self, account: str, job_id: str, lease: float, holder: str = "?", name: str | None = None) -> int:
        """Extend the lease bound to `job_id`; with none, take over the lease named `name` (the
        permit its entry's create was sent under), else bind a new one to it (over the limit if
        need be: the job runs either way). Returns the leases renewed or taken over (0: one was added)."""
        return int(self._run("renew_job", _RENEW_JOB, account, job_id, lease, holder, uuid.uuid4().hex, name or ""))

    def release(self, token: str) -> bool:
        return bool(self._run("release", _RELEASE, token))

    def release_job(self, account: str, job_id: str) -> int:
        return int(self._run("release_job", _RELEASE_JOB, account, job_id))

    def in_use(self, account: str) -> int:
        return int(self._run("in_use", _IN_USE, account))

    def close(self) -> None:
        """Nothing to close per governor: the process's client is shared and reconnects itself."""


def _windows(url: str, namespace: str) -> Any:
    from limits.storage import RedisStorage

    from ..builtins.governor import RateWindows

    class GuardedWindows(RateWindows):
        """`limits`' moving windows in Redis, with connection errors that name the fix."""

        def try_hit(self, account: str, kind: str, rate: float) -> tuple[bool, int, int, float]:
            with guarded(url, "use the rate windows in"):
                return super().try_hit(account, kind, rate)

    storage = RedisStorage(
        url, key_prefix=f"{namespace}:limits", socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
    )
    return GuardedWindows(storage)


_governors: dict[tuple[str, str, float | None], LeaseGovernor] = {}
_lock = threading.Lock()


def redis_governor(url: str, namespace: str, *, lease: float | None = None) -> LeaseGovernor:
    """The process's Redis governor for (`url`, `namespace`); checks Redis answers first."""
    from ..builtins.governor import LeaseGovernor

    client_for(url)  # a Redis that is down: RedisUnavailable now, before any slot or create
    key = (url, namespace, lease)
    with _lock:
        governor = _governors.get(key)
        if governor is None:
            # RedisLeases offers every method of LeaseTable that LeaseGovernor calls.
            leases = cast("LeaseTable", RedisLeases(url, namespace))
            governor = _governors[key] = LeaseGovernor(leases, _windows(url, namespace), lease=lease)
        return governor
