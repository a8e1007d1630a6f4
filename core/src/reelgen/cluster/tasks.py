"""The Dramatiq actors and broker for queued batches (`reelgen worker` runs them).

The broker is Dramatiq's `RedisBroker` on `cluster.redis`, under `NAMESPACE-dramatiq`.
Two actors, each a short step of `reelgen.cluster.work`: `reelgen_submit` and
`reelgen_check` (which re-sends itself with a delay until the row can be collected).
Workers and the enqueuing `reelgen batch --queue` import this module; it configures the
broker from the configuration in effect (`load_config()`) at import.

`[cluster] requeue_after` (seconds, default 60): how long a worker may be silent before
Dramatiq hands its unacknowledged messages to another (a worker killed with `kill -9`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import attrs
import dramatiq
from dramatiq.brokers.redis import RedisBroker

from ..config import Config, load_config
from ..errors import ConfigError
from ._redis import client_for, redis_settings
from .work import Check, Resubmit, Task, Wake, check_step, overdue_after, state_of, submit_step

__all__ = ["QUEUE", "broker", "enqueue_task", "reelgen_check", "reelgen_submit", "send_row"]

log = logging.getLogger("reelgen.worker")

QUEUE = "reelgen"
#: One in this many Redis commands of a worker also requeues dead workers' messages.
_MAINTENANCE_CHANCE = 50_000


def _broker() -> RedisBroker:
    config = load_config()
    settings = redis_settings(config)
    if settings is None:
        raise ConfigError("reelgen workers need a Redis: set REELGEN_REDIS_URL or [cluster] redis = 'redis://...'")
    url, namespace = settings
    client_for(url)  # a Redis that is down: a clear error now
    requeue_after = config.cluster.requeue_after
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=url,
        namespace=f"{namespace}-dramatiq",
        heartbeat_timeout=int(requeue_after * 1000),
        maintenance_chance=_MAINTENANCE_CHANCE,
    )


#: How long an idle worker's consumer waits between looks at its queue, at most (milliseconds).
#: Dramatiq's default (1 s) adds up to a second to every step of a row (submit, each check,
#: the next row's wake), waves after waves; looking every 0.1 s costs Redis ten cheap calls
#: a second per consumer.
IDLE_POLL_MS = 100


class _QuickConsumers(dramatiq.Middleware):
    """Sets the worker's idle poll before its consumers start (the dramatiq CLI has no flag for it)."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        worker.worker_timeout = IDLE_POLL_MS

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        import threading

        threading.Thread(target=_warm_up, name="reelgen-warm-up", daemon=True).start()


def _warm_up() -> None:
    """Build the configured providers (the default and every account) and let them import their
    SDKs, so the first row of each worker process does not pay for it. Best effort."""
    from .._registry import get_provider, provider_for_row

    config = _config
    try:
        providers = [get_provider(None, config=config)] if config.provider else []
        providers += [provider_for_row(None, name, config=config) for name in sorted(config.accounts)]
        for provider in providers:
            warm = getattr(provider, "warm_up", None)
            if callable(warm):
                warm()
    except Exception:  # a row will say what is wrong, with its context
        log.info("could not warm up the configured providers", exc_info=True)


broker = _broker()
broker.add_middleware(_QuickConsumers())
dramatiq.set_broker(broker)

_config = load_config()
#: A message may run as long as one generation may (the rare full recovery path), plus a margin.
_TIME_LIMIT_MS = int((_config.deadline + 600) * 1000)


def _task(data: dict[str, Any]) -> Task:
    return Task(**data)


def _check_data(check: Check) -> dict[str, Any]:
    return {"ref": check.ref, "seq": check.seq, "attempt": check.attempt, "delay": check.delay}


def _send_next(task: dict[str, Any], following: Check | Resubmit | Wake | None, config: Config) -> None:
    if isinstance(following, Check):
        reelgen_check.send_with_options(args=(task, _check_data(following)), delay=int(following.delay * 1000))
        _scheduled(task, following.delay, config)
    elif isinstance(following, Resubmit):
        reelgen_submit.send_with_options(args=(task,), delay=int(following.delay * 1000))
        _scheduled(task, following.delay, config)
    elif isinstance(following, Wake):
        reelgen_submit.send(following.task)
        _scheduled(following.task, 0.0, config)


def _scheduled(task: dict[str, Any], delay: float, config: Config) -> None:
    """Note when the row's next step is due: a follower re-sends a row whose chain was lost."""
    state_of(config, task["batch"]).touch(task["row"], time.time() + delay + overdue_after(config))


def send_row(task: Task, config: Config, *, seq: int, ref: str | None) -> None:
    """Send a row's next step again (its messages were lost): its check `seq` when it is being
    checked, else its submit. A copy of a step still on its way is harmless: the row's live
    check number and its submit claim let only one run."""
    data = attrs.asdict(task)
    if ref is not None and seq > 0:
        reelgen_check.send(data, _check_data(Check(ref=ref, seq=seq, attempt=0, delay=0.0)))
    else:
        reelgen_submit.send(data)
    _scheduled(data, 0.0, config)


@dramatiq.actor(queue_name=QUEUE, max_retries=20, min_backoff=1000, max_backoff=30000, time_limit=_TIME_LIMIT_MS)
def reelgen_submit(task: dict[str, Any]) -> None:
    """Create the row's job (once) and schedule its first check."""
    config = load_config()
    _send_next(task, asyncio.run(submit_step(_task(task), config)), config)


@dramatiq.actor(queue_name=QUEUE, max_retries=20, min_backoff=1000, max_backoff=30000, time_limit=_TIME_LIMIT_MS)
def reelgen_check(task: dict[str, Any], check: dict[str, Any]) -> None:
    """Poll the row's job once; collect it, or schedule the next check."""
    config = load_config()
    step = check_step(_task(task), Check(**check), config, wake=_wake)
    _send_next(task, asyncio.run(step), config)


def _wake(task: dict[str, Any]) -> None:
    reelgen_submit.send(task)


def enqueue_task(task: Task, config: Config) -> None:
    data = attrs.asdict(task)
    reelgen_submit.send(data)
    _scheduled(data, 0.0, config)
