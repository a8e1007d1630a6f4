"""Queued batches: send a checked plan's rows to the workers, then copy their outcomes to the results file.

`enqueue(plan, config, batch=...)` sends each row once (the batch state remembers what
was sent, so running the same command again sends only what never went out).
`follow(...)` copies finished rows' lines from Redis into the results file (each row
once, never a line the file already has) until every row has one. The batch id names
the results file, so `reelgen batch MANIFEST --queue` run again (after `--no-wait`, a
crash or Ctrl-C) finds the same batch and follows it to the end.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..batches import BatchPlan, ResultsFile
    from ..config import Config
    from .batchstate import BatchState
    from .work import Task

__all__ = ["batch_id", "enqueue", "enqueue_tasks", "follow", "state_for"]

#: Seconds between looks at the batch state while following.
_FOLLOW_EVERY = 0.5


def batch_id(results: Path) -> str:
    """The batch a results file belongs to (its absolute path, hashed)."""
    return hashlib.sha256(str(results.expanduser().resolve()).encode()).hexdigest()[:20]


def state_for(config: Config, batch: str) -> BatchState:
    from ._redis import RedisUnavailable, client_for, redis_settings
    from .batchstate import BatchState

    settings = redis_settings(config)
    if settings is None:
        raise RedisUnavailable("--queue needs a Redis: set REELGEN_REDIS_URL or [cluster] redis = 'redis://...'")
    client_for(settings[0])  # down: a clear error before anything is sent
    return BatchState(settings[0], settings[1], batch)


def enqueue_tasks(config: Config, tasks: Iterable[Task]) -> int:
    """Send each task whose row was never sent; returns how many were sent now."""
    from .tasks import enqueue_task

    sent = 0
    states: dict[str, BatchState] = {}
    for task in tasks:
        state = states.get(task.batch) or states.setdefault(task.batch, state_for(config, task.batch))
        if not state.mark_sent(task.row):
            continue
        try:
            enqueue_task(task)
        except BaseException:
            state.unsend(task.row)
            raise
        sent += 1
    return sent


def enqueue(plan: BatchPlan, config: Config, *, batch: str, skip: Iterable[str] = ()) -> int:
    """Send the plan's rows (except `skip`, e.g. rows the results file already has)."""
    from .work import task_for

    skipped = set(skip)
    tasks = (
        task_for(batch, planned.row.id, planned.row.request, planned.provider.name, line=planned.row.line)
        for planned in plan.rows
        if planned.row.id not in skipped
    )
    return enqueue_tasks(config, tasks)


def follow(
    state: BatchState,
    results: ResultsFile,
    rows: Iterable[str],
    *,
    on_line: Callable[[dict[str, Any]], None] | None = None,
    timeout: float | None = None,
) -> bool:
    """Copy finished rows' lines into `results` until every row in `rows` has one.

    Returns True when complete, False when `timeout` (seconds) ran out first.
    """
    wanted = list(dict.fromkeys(rows))
    written = {line["id"] for line in results.lines}
    give_up = None if timeout is None else time.monotonic() + timeout
    while True:
        missing = [row for row in wanted if row not in written]
        if missing:
            done = state.done()
            for row in missing:
                line = done.get(row)
                if line is not None:
                    results.append(line)
                    written.add(row)
                    if on_line is not None:
                        on_line(line)
        if all(row in written for row in wanted):
            return True
        if give_up is not None and time.monotonic() >= give_up:
            return False
        time.sleep(_FOLLOW_EVERY)
