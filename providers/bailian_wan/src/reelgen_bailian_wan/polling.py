"""When to look at a task next: few queries, and completion seen soon after it happens.

The SDK's `wait()` polls at 0, 1, 2, 4, 6, 8, 12 s and then every 5 s whatever the task:
about `T / 5 + 7` queries for a task of `T` seconds, and a detection delay spread over
0 to 5 s. A video task's running time is predictable from its output duration and tier,
and the service stamps `scheduled_time` (start) and `end_time` on every answer, so we can
do better:

* `RunTimes` learns how long tasks really run, from those server timestamps (not from
  our polling, which would bias it), with a small Bayesian linear model of the work
  (fixed and per-output-second costs, per tier), so a 15 s 1080P task teaches something
  about a 5 s 720P one, and a prior of the wrong shape is corrected;
* `Schedule` sleeps until 1.5 standard deviations before the predicted end, then looks
  densest near it (every `spread / 4`, 0.5 to 2 s; up to 5 s, the SDK's own pace, while
  the prediction is unsure) and sparser in the tails, so a late task backs off on its own
  (up to 15 s, the docs' suggested interval). Until a task is seen RUNNING, its start is
  the later of its submission plus the typical queue time and the last time it was seen
  PENDING.

Everything is in seconds of our own clock; server timestamps are mapped onto it with the
offset between `submit_time` and our submission time (which absorbs the server's UTC+8
and any skew). `scale` multiplies the prior and the interval bounds, for emulators that
compress time (learned values need no scaling: they are measured).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

__all__ = ["RunTimes", "Schedule", "TaskView", "parse_server_time", "prior_run_seconds"]

#: Bounds on the interval between two looks at one task, in service seconds.
MIN_INTERVAL = 0.5
WINDOW_INTERVAL = 2.0
#: The same bound for an unsure prediction (the prior alone, or little history): the SDK's.
COLD_INTERVAL = 5.0
MAX_INTERVAL = 15.0
#: How far before the predicted end the first look is, in standard deviations.
LEAD_SIGMAS = 1.5
#: Spread assumed with no history, and the floor on any spread, relative to the mean.
PRIOR_SPREAD = 0.4
MIN_SPREAD = 0.02
#: Relative noise of run times assumed until measured, held like this many observations.
PRIOR_NOISE = 0.15
_NOISE_PSEUDO = 1.0
#: Typical PENDING time before a task starts (service seconds), until measured.
PRIOR_QUEUE = 2.0
#: Finished tasks remembered, and how much less each older one weighs.
_HISTORY = 64
_RECENCY = 0.97


def prior_run_seconds(duration: float, tier: str) -> float:
    """A guess at RUNNING time before anything is measured (service seconds).

    The docs say generation "typically takes 1-5 minutes"; work grows with output
    seconds and pixels: 60 s + 8 s per output second at 720P, 1.5x at 1080P.
    """
    return float(_features(duration, tier) @ _PRIOR_MEAN)


def parse_server_time(text: object) -> float | None:
    """`YYYY-MM-DD HH:mm:ss.SSS` (zone unknown) as seconds; offsets are taken elsewhere."""
    if not isinstance(text, str) or not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    return None


class _Vector(tuple[float, ...]):
    """A tiny fixed-size vector with `@` (dot product): no numpy on the polling path."""

    def __matmul__(self, other: Sequence[float]) -> float:
        return float(sum(a * b for a, b in zip(self, other, strict=True)))


def _features(duration: float, tier: str) -> _Vector:
    high = 1.0 if tier == "1080P" else 0.0
    return _Vector((1.0, float(duration), high, high * duration))


#: The prior over run time = features . theta (service seconds): 720P 60 + 8 d, 1080P 90 + 12 d.
_PRIOR_MEAN = _Vector((60.0, 8.0, 30.0, 4.0))
_PRIOR_SD = (40.0, 6.0, 40.0, 6.0)


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float]:
    """Solve a small symmetric positive definite system (Gauss-Jordan with pivoting)."""
    size = len(vector)
    rows = [[*row, value] for row, value in zip(matrix, vector, strict=True)]
    for column in range(size):
        pivot = max(range(column, size), key=lambda r: abs(rows[r][column]))
        rows[column], rows[pivot] = rows[pivot], rows[column]
        lead = rows[column][column]
        rows[column] = [value / lead for value in rows[column]]
        for other in range(size):
            if other != column and rows[other][column]:
                factor = rows[other][column]
                rows[other] = [a - factor * b for a, b in zip(rows[other], rows[column], strict=True)]
    return [row[-1] for row in rows]


class RunTimes:
    """What RUNNING takes, learned from finished tasks. Thread-safe.

    A Bayesian linear model: run = a + b*d (+ c + e*d at 1080P), d the output seconds,
    with the prior above and noise proportional to the run time (its relative size is
    learned too). One finished task moves every estimate a little; tasks of several
    durations pin down the fixed and per-second costs separately, so a prior whose
    shape is off is corrected. Recent tasks weigh more (the service's load drifts).
    """

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, str, float]] = deque(maxlen=_HISTORY)
        self._queues: deque[float] = deque(maxlen=_HISTORY)
        self._fit: tuple[list[float], list[list[float]], float] | None = None

    def prior(self, duration: float, tier: str) -> float:
        return prior_run_seconds(duration, tier) * self.scale

    def add(self, *, duration: float, tier: str, run: float, queue: float | None) -> None:
        if run <= 0 or not math.isfinite(run):
            return
        with self._lock:
            self._samples.append((float(duration), tier, run / self.scale))
            self._fit = None
            if queue is not None and queue >= 0:
                self._queues.append(queue)

    def _posterior(self) -> tuple[list[float], list[list[float]], float]:
        """(theta, covariance, relative noise) in service seconds. Call with the lock held."""
        if self._fit is not None:
            return self._fit
        samples = list(self._samples)
        noise = PRIOR_NOISE
        size = len(_PRIOR_MEAN)
        for _ in range(3):
            precision = [[(1.0 / _PRIOR_SD[i] ** 2 if i == j else 0.0) for j in range(size)] for i in range(size)]
            target = [_PRIOR_MEAN[i] / _PRIOR_SD[i] ** 2 for i in range(size)]
            for age, (duration, tier, run) in enumerate(reversed(samples)):
                x = _features(duration, tier)
                weight = _RECENCY**age / (noise * run) ** 2
                for i in range(size):
                    target[i] += weight * x[i] * run
                    for j in range(size):
                        precision[i][j] += weight * x[i] * x[j]
            theta = _solve(precision, target)
            squares = sum(((run - _features(d, t) @ theta) / run) ** 2 for d, t, run in samples)
            noise = max(
                MIN_SPREAD, math.sqrt((squares + _NOISE_PSEUDO * PRIOR_NOISE**2) / (len(samples) + _NOISE_PSEUDO))
            )
        covariance = [_solve(precision, [1.0 if i == j else 0.0 for i in range(size)]) for j in range(size)]
        self._fit = (theta, covariance, noise)
        return self._fit

    def run(self, duration: float, tier: str) -> tuple[float, float]:
        """(mean, standard deviation) of the RUNNING time, in our seconds."""
        with self._lock:
            if not self._samples:
                prior = self.prior(duration, tier)
                return prior, PRIOR_SPREAD * prior
            theta, covariance, noise = self._posterior()
        x = _features(duration, tier)
        mean = max(x @ theta, 0.05 * (x @ _PRIOR_MEAN))
        uncertainty = sum(x[i] * x[j] * covariance[i][j] for i in range(len(x)) for j in range(len(x)))
        spread = math.sqrt(max(0.0, uncertainty) + (noise * mean) ** 2)
        return mean * self.scale, max(spread, MIN_SPREAD * mean) * self.scale

    def queue(self) -> float:
        with self._lock:
            queues = list(self._queues)
        return statistics.median(queues) if queues else PRIOR_QUEUE * self.scale

    @property
    def samples(self) -> int:
        with self._lock:
            return len(self._samples)


@attrs.define
class TaskView:
    """What we know about one task's timing, on our own clock."""

    submitted_at: float
    duration: float
    tier: str
    status: str | None = None
    #: Server-to-local offset (local = server + offset), once a reply carried submit_time.
    offset: float | None = None
    started_at: float | None = None
    last_pending_at: float | None = None
    last_look_at: float | None = None
    #: Interval used for the previous look (grows while a task is late).
    last_interval: float = 0.0
    recorded: bool = False

    def observe(self, status: str, output: Mapping[str, Any] | None, *, now: float) -> None:
        self.status = status
        self.last_look_at = now
        output = output or {}
        submit = parse_server_time(output.get("submit_time"))
        if self.offset is None and submit is not None:
            self.offset = self.submitted_at - submit
        if status == "PENDING":
            self.last_pending_at = now
            return
        scheduled = parse_server_time(output.get("scheduled_time"))
        if scheduled is not None and self.offset is not None:
            self.started_at = min(now, scheduled + self.offset)
        elif status == "RUNNING" and self.started_at is None:
            # Started some time since we last saw it PENDING (or since submission).
            self.started_at = self.last_pending_at or self.submitted_at

    def server_durations(self, output: Mapping[str, Any]) -> tuple[float | None, float | None]:
        """(run, queue) seconds from the server's own timestamps, if it gave them."""
        submit = parse_server_time(output.get("submit_time"))
        scheduled = parse_server_time(output.get("scheduled_time"))
        end = parse_server_time(output.get("end_time"))
        run = end - scheduled if end is not None and scheduled is not None else None
        queue = scheduled - submit if scheduled is not None and submit is not None else None
        return run, queue


class Schedule:
    """Our poll schedule: `delay(view)` says how long to sleep before the next look."""

    def __init__(self, times: RunTimes, *, clock: Callable[[], float] = time.time) -> None:
        self.times = times
        self.scale = times.scale
        self._clock = clock

    def predicted_end(self, view: TaskView) -> tuple[float, float]:
        """(expected end, spread) on our clock."""
        mean, spread = self.times.run(view.duration, view.tier)
        now = self._clock()
        if view.started_at is not None:
            start = view.started_at
        else:
            start = view.submitted_at + self.times.queue()
            if view.last_pending_at is not None:
                start = max(start, view.last_pending_at)
            start = max(start, min(now, view.submitted_at))
        return start + mean, spread

    def delay(self, view: TaskView) -> float:
        now = self._clock()
        floor = MIN_INTERVAL * self.scale
        end, spread = self.predicted_end(view)
        first_look = end - LEAD_SIGMAS * spread
        if now < first_look - floor:
            interval = first_look - now
        else:
            # Densest near the predicted end, sparser in the tails (spacing grows like
            # 1/sqrt(density) of a normal), so a late task backs off on its own.
            z = (now - end) / spread
            # A sure prediction is watched closely; an unsure one (a wide spread) costs a
            # look every spread/6, up to the SDK's own 5 s.
            cap = min(max(spread / 6, WINDOW_INTERVAL * self.scale), COLD_INTERVAL * self.scale)
            base = min(max(spread / 4, floor), cap)
            interval = min(max(base * math.exp(min(z * z / 4, 10.0)), floor), MAX_INTERVAL * self.scale)
        view.last_interval = interval
        return max(interval, 0.0)
