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
    from ..batches import BatchPlan, PlannedRow, ResultsFile
    from ..config import Config
    from .batchstate import BatchState
    from .work import Task

__all__ = ["batch_id", "enqueue", "enqueue_tasks", "follow", "resender", "state_for"]

#: Seconds between looks at the batch state while following.
_FOLLOW_EVERY = 0.5
#: Seconds between looks for rows whose next step is overdue (their messages were lost).
_SWEEP_EVERY = 5.0


def batch_id(results: Path) -> str:
    """The batch a results file belongs to (its absolute path, hashed)."""
    return hashlib.sha256(str(results.expanduser().resolve()).encode()).hexdigest()[:20]


def state_for(config: Config, batch: str) -> BatchState:
    """`work.state_of`, once Redis has answered: a Redis that is down is a clear error before anything is sent."""
    from ._redis import client_for
    from .work import state_of

    state = state_of(config, batch)
    client_for(state.url)
    return state


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
            enqueue_task(task, config)
        except BaseException:
            state.unsend(task.row)
            raise
        sent += 1
    return sent


def enqueue(plan: BatchPlan, config: Config, *, batch: str, skip: Iterable[str] = ()) -> int:
    """Send the plan's rows (except `skip`, e.g. rows the results file already has)."""
    skipped = set(skip)
    tasks = (_task(planned, batch) for planned in plan.rows if planned.row.id not in skipped)
    return enqueue_tasks(config, tasks)


def _task(planned: PlannedRow, batch: str) -> Task:
    from .work import task_for

    row = planned.row
    return task_for(batch, row.id, row.request, planned.provider.name, account=row.account, line=row.line)


def resender(
    plan: BatchPlan, state: BatchState, config: Config, *, on_resend: Callable[[str], None] | None = None
) -> Callable[[str], None]:
    """`follow`'s `resend` for a plan's rows: sends a lost row's step again (its check, else its submit)."""
    from .tasks import send_row

    by_id = {planned.row.id: planned for planned in plan.rows}

    def resend(row: str) -> None:
        planned = by_id.get(row)
        if planned is None:
            return
        send_row(_task(planned, state.batch), config, seq=state.seq(row), ref=state.job(row))
        if on_resend is not None:
            on_resend(row)

    return resend


def follow(
    state: BatchState,
    results: ResultsFile,
    rows: Iterable[str],
    *,
    on_line: Callable[[dict[str, Any]], None] | None = None,
    timeout: float | None = None,
    resend: Callable[[str], None] | None = None,
) -> bool:
    """Copy finished rows' lines into `results` until every row in `rows` has one.

    `resend(row)` is called for a row whose next step is overdue (`BatchState.overdue`):
    its chain of messages was lost, and only sending its step again finishes it.
    Returns True when complete, False when `timeout` (seconds) ran out first.
    """
    wanted = list(dict.fromkeys(rows))
    written = {line["id"] for line in results.lines}
    give_up = None if timeout is None else time.monotonic() + timeout
    swept = time.monotonic()
    while True:
        if resend is not None and time.monotonic() - swept >= _SWEEP_EVERY:
            swept = time.monotonic()
            for row in state.overdue([row for row in wanted if row not in written], time.time()):
                resend(row)
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
