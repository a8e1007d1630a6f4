"""Scale-out through one Redis: the governor, the job journal and the cache, shared by every machine.

Set `REELGEN_REDIS_URL` (or `[cluster] redis = "redis://host:6379/0"`) and the plugin in
`reelgen.cluster.plugin` answers the `reelgen_governor`, `reelgen_journal` and cache hooks
before the local SQLite built-ins:

* `reelgen.cluster.governor`: concurrency permits as leases in Redis (renewed on every
  poll, reclaimed when a holder stops renewing or anyone sees the job end), rate windows
  through `limits`' Redis storage. Per account, across machines.
* `reelgen.cluster.journal`: the job journal; single-flight across machines through one
  atomic Lua script; `reelgen jobs` lists every machine's jobs.
* `reelgen.cluster.cache`: the result cache (URLs and metadata only).
* `reelgen.cluster.worker`: Dramatiq workers on the same Redis (`reelgen worker`).

Every key starts with `cluster.namespace` (default `reelgen`). Nothing secret is written:
entries hold sanitized requests, non-reversible account ids and results. One Redis (not
Redis Cluster: the scripts touch keys they compute). A Redis that cannot be reached is a
clear error before anything is paid. Needs the `reelgen[redis]` extra (`pip install redis`).
"""

from __future__ import annotations

from ._redis import RedisUnavailable, client_for, redis_settings, safe_url

__all__ = ["RedisUnavailable", "client_for", "redis_settings", "safe_url"]
