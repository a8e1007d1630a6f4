"""Tasks, their lifecycle by simulated time, and the counters tests read.

A task's state is worked out from timestamps whenever someone looks (`_tick`), not
by a background timer: PENDING for `queue_seconds` (and, under the "queue"
concurrency policy, until one of `max_concurrent` running slots is free), RUNNING
for its run time, then SUCCEEDED once its video is rendered (or FAILED). Events
are replayed in time order, so `scheduled_time` and `end_time` are what a real
scheduler would have stamped, however rarely the task is polled.
"""

from __future__ import annotations

import hashlib
import math
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import attrs

from .clock import Clock
from .config import EmulatorConfig
from .errors import ApiError, failure_message
from .oss import OssBuckets
from .render import RenderKey
from .validation import CreateSpec

__all__ = ["STATUSES", "Counters", "Task", "TaskStore", "modeled_run_seconds"]

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED, UNKNOWN = (
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "CANCELED",
    "UNKNOWN",
)
STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED, UNKNOWN)
_ACTIVE = (PENDING, RUNNING)
TIER_SR = {"720P": 720, "1080P": 1080}


def modeled_run_seconds(duration: int, resolution: str) -> float:
    """RUNNING time when `run_seconds` is None: a model of the real service.

    The docs say generation typically takes 1 to 5 minutes; this grows with the
    output length and the tier: 40 s + 10 s per output second at 720P, 1.5x at
    1080P (5 s at 720P: 90 s; 15 s at 1080P: 285 s).
    """
    base = 40.0 + 10.0 * duration
    return base * (1.5 if resolution == "1080P" else 1.0)


def key_id(api_key: str) -> str:
    """A stable, non-reversible id for a key (the list route's `api_key_id`)."""
    return str(int(hashlib.sha256(api_key.encode()).hexdigest()[:10], 16) % 10**6)


@attrs.define(eq=False)
class Task:
    task_id: str
    number: int
    request_id: str
    api_key_id: str
    spec: CreateSpec
    submit_at: float
    eligible_at: float
    run_for: float
    output_size: tuple[int, int] | None = None
    render_key: RenderKey | None = None
    # (code, message) this task is doomed to end with: a content problem found at
    # submission fails it as soon as it is scheduled; an injected fault at run end.
    rejection: tuple[str, str] | None = None
    failure: tuple[str, str] | None = None
    expires_early: bool = False
    status: str = PENDING
    scheduled_at: float | None = None
    end_at: float | None = None
    code: str | None = None
    message: str | None = None
    render: Future[Path] | None = None
    render_done_at: float | None = None
    video_url: str | None = None
    url_expires_at: float | None = None
    #: When a query first reported the end (for benches: how long the end went unseen).
    seen_end_at: float | None = None


@attrs.define
class Counters:
    creates: int = 0  # create requests received (accepted or not)
    tasks_created: int = 0  # tasks actually created
    queries: int = 0
    cancels: int = 0
    lists: int = 0
    policies: int = 0  # getPolicy requests
    uploads: int = 0  # OSS form posts
    downloads: int = 0
    billed_seconds: int = 0  # output seconds of SUCCEEDED tasks
    billed_seconds_by_tier: dict[str, int] = attrs.field(factory=lambda: {"720P": 0, "1080P": 0})
    throttled: int = 0  # 429s sent, injected ones included
    errors: int = 0  # API replies with a 4xx/5xx status
    faults: dict[str, int] = attrs.field(factory=dict)  # injected faults by kind

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1


class TaskStore:
    def __init__(self, config: EmulatorConfig, clock: Clock, oss: OssBuckets) -> None:
        self.config = config
        self.clock = clock
        self.oss = oss
        self.lock = threading.RLock()
        self.counters = Counters()
        self._tasks: dict[str, Task] = {}
        self._order: list[Task] = []
        self._released_at = -math.inf  # last time a full set of running slots freed one

    def reset(self) -> list[Task]:
        """Forget everything; returns the forgotten tasks (to release their renders)."""
        with self.lock:
            forgotten = list(self._order)
            self.counters = Counters()
            self._tasks.clear()
            self._order.clear()
            self._released_at = -math.inf
            return forgotten

    # -- creation ----------------------------------------------------------------

    def create(
        self,
        spec: CreateSpec,
        *,
        api_key: str,
        request_id: str,
        output_size: tuple[int, int] | None,
        render_key: RenderKey | None,
        rejection: tuple[str, str] | None,
        fate: Callable[[int], tuple[tuple[str, str] | None, bool]],
        start_render: Callable[[RenderKey], Future[Path]],
    ) -> Task:
        """Register a task, PENDING from now, or raise 429 under the "reject" policy.

        `fate(number)` says whether the task is doomed by an injected fault and
        whether its URL expires early; `start_render` starts its video. Both run
        under the store's lock, so no other thread sees the task half set up.
        """
        scale = self.config.time_scale
        run = self.config.run_seconds
        if run is None:
            run = modeled_run_seconds(spec.duration, spec.resolution)
        with self.lock:
            now = self.clock.now()
            self._tick(now)
            limit = self.config.max_concurrent
            if self.config.concurrency_policy == "reject" and limit is not None:
                active = sum(1 for t in self._order if t.status in _ACTIVE and not self._expired(t, now))
                if active >= limit:
                    raise ApiError.throttled("Throttling")
            task = Task(
                task_id=str(uuid.uuid4()),
                number=len(self._order),
                request_id=request_id,
                api_key_id=key_id(api_key),
                spec=spec,
                submit_at=now,
                eligible_at=now + self.config.queue_seconds * scale,
                run_for=run * scale,
                output_size=output_size,
                render_key=render_key,
                rejection=rejection,
            )
            failure, task.expires_early = fate(task.number)
            if rejection is None:
                if failure is not None:
                    task.failure = failure
                else:
                    assert render_key is not None
                    self._attach_render(task, start_render(render_key))
            self._tasks[task.task_id] = task
            self._order.append(task)
            self.counters.tasks_created += 1
            return task

    def _attach_render(self, task: Task, future: Future[Path]) -> None:
        task.render = future

        def done(_: Future[Path]) -> None:
            with self.lock:
                task.render_done_at = self.clock.now()

        future.add_done_callback(done)

    # -- reading -------------------------------------------------------------------

    def _expired(self, task: Task, now: float) -> bool:
        return now - task.submit_at >= self.config.task_ttl_seconds

    def get(self, task_id: str) -> Task | None:
        """The task if it exists and has not expired, brought up to date."""
        with self.lock:
            now = self.clock.now()
            self._tick(now)
            task = self._tasks.get(task_id)
            if task is None or self._expired(task, now):
                return None
            return task

    def cancel(self, task_id: str) -> None:
        with self.lock:
            task = self.get(task_id)
            if task is None or task.status != PENDING:
                raise ApiError(400, "UnsupportedOperation")
            task.status = CANCELED
            task.end_at = self.clock.now()

    def live_tasks(self) -> list[Task]:
        """Every unexpired task, oldest first, brought up to date."""
        with self.lock:
            now = self.clock.now()
            self._tick(now)
            return [t for t in self._order if not self._expired(t, now)]

    def all_tasks(self) -> list[tuple[Task, str]]:
        """Every task with the status a query would report (UNKNOWN once expired)."""
        with self.lock:
            now = self.clock.now()
            self._tick(now)
            return [(t, UNKNOWN if self._expired(t, now) else t.status) for t in self._order]

    def all_tasks_raw(self) -> list[Task]:
        with self.lock:
            return list(self._order)

    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for _, status in self.all_tasks():
            counts[status] += 1
        return counts

    # -- the lifecycle -------------------------------------------------------------

    def _finish_time(self, task: Task) -> float | None:
        assert task.scheduled_at is not None
        end = task.scheduled_at + task.run_for
        if task.failure is not None:
            return end
        if task.render is None or task.render_done_at is None:
            return None
        return max(end, task.render_done_at)

    def _tick(self, now: float) -> None:
        """Replay every start and finish due by `now`, in time order."""
        limit = math.inf
        if self.config.concurrency_policy == "queue" and self.config.max_concurrent is not None:
            limit = float(self.config.max_concurrent)
        running = [t for t in self._order if t.status == RUNNING]
        pending = [t for t in self._order if t.status == PENDING]
        while True:
            finish: tuple[float, Task] | None = None
            for task in running:
                at = self._finish_time(task)
                if at is not None and at <= now and (finish is None or at < finish[0]):
                    finish = (at, task)
            start: tuple[float, Task] | None = None
            if pending and len(running) < limit:
                at = max(pending[0].eligible_at, self._released_at)
                if at <= now:
                    start = (at, pending[0])
            if finish is not None and (start is None or finish[0] <= start[0]):
                at, task = finish
                if len(running) == limit:
                    self._released_at = at
                running.remove(task)
                self._finish(task, at)
            elif start is not None:
                at, task = start
                pending.pop(0)
                task.scheduled_at = at
                if task.rejection is not None:
                    self._fail(task, at, *task.rejection)
                else:
                    task.status = RUNNING
                    running.append(task)
            else:
                return

    def _fail(self, task: Task, at: float, code: str, message: str) -> None:
        task.status, task.end_at, task.code, task.message = FAILED, at, code, message

    def _finish(self, task: Task, at: float) -> None:
        if task.failure is not None:
            self._fail(task, at, *task.failure)
            return
        assert task.render is not None
        # A render dropped on stop/reset, or one that raised, fails the task.
        if task.render.cancelled() or task.render.exception() is not None:
            self._fail(task, at, "InternalError", failure_message("InternalError"))
            return
        task.status, task.end_at = SUCCEEDED, at
        task.video_url, task.url_expires_at = self.oss.publish(
            task.render.result(), at=at, expires_early=task.expires_early
        )
        tier = task.spec.resolution
        self.counters.billed_seconds += task.spec.duration
        self.counters.billed_seconds_by_tier[tier] += task.spec.duration

    # -- wire shapes ---------------------------------------------------------------

    def output(self, task: Task) -> dict[str, Any]:
        """The `output` of a query reply (reference §4); `usage` separately."""
        fmt = self.clock.format
        out: dict[str, Any] = {"task_id": task.task_id, "task_status": task.status}
        out["submit_time"] = fmt(task.submit_at)
        if task.scheduled_at is not None:
            out["scheduled_time"] = fmt(task.scheduled_at)
        if task.end_at is not None:
            out["end_time"] = fmt(task.end_at)
        if task.status == SUCCEEDED:
            out["orig_prompt"] = task.spec.prompt or ""
            out["video_url"] = task.video_url
        elif task.status == FAILED:
            out["code"], out["message"] = task.code, task.message
        return out

    @staticmethod
    def usage(task: Task) -> dict[str, Any] | None:
        if task.status != SUCCEEDED:
            return None
        duration = task.spec.duration
        return {
            "duration": duration,
            "input_video_duration": 0,
            "output_video_duration": duration,
            "video_count": 1,
            "SR": TIER_SR[task.spec.resolution],
            "audio": task.spec.audio,
        }
