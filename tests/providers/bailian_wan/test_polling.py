"""Our poll schedule: learns from server timestamps, looks near the predicted end, backs off when late."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelgen_bailian_wan.polling import (
    LEAD_SIGMAS,
    MAX_INTERVAL,
    MIN_INTERVAL,
    WINDOW_INTERVAL,
    RunTimes,
    Schedule,
    TaskView,
    parse_server_time,
    prior_run_seconds,
)
from tests.providers.bailian_wan.helpers import drive, provider_for, request, task


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def stamp(seconds: float) -> str:
    """A server timestamp (UTC+8, like the service) for our epoch second `seconds`."""
    from datetime import datetime, timedelta, timezone

    moment = datetime.fromtimestamp(seconds, timezone(timedelta(hours=8)))
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def test_server_times_parse_and_the_offset_absorbs_the_zone() -> None:
    assert parse_server_time("2025-09-25 11:07:28.590") == pytest.approx(1758798448.59)
    assert parse_server_time("2025-09-25 11:07:28") is not None
    assert parse_server_time("garbage") is None and parse_server_time(None) is None
    view = TaskView(submitted_at=5000.0, duration=5, tier="720P")
    view.observe("RUNNING", {"submit_time": stamp(5000.0), "scheduled_time": stamp(5003.0)}, now=5010.0)
    assert view.started_at == pytest.approx(5003.0, abs=0.01)


def test_with_no_history_the_first_look_is_well_before_the_prior() -> None:
    clock = Clock()
    times = RunTimes()
    schedule = Schedule(times, clock=clock)
    view = TaskView(submitted_at=clock.now, duration=5, tier="720P")
    mean, spread = times.run(5, "720P")
    assert mean == prior_run_seconds(5, "720P") == 100.0 and spread == pytest.approx(0.4 * mean)
    assert schedule.delay(view) == pytest.approx(times.queue() + mean - LEAD_SIGMAS * spread)


def test_once_learned_it_looks_just_before_the_end_then_about_every_second() -> None:
    clock = Clock()
    times = RunTimes()
    for duration in (2, 5, 10, 15) * 4:
        times.add(duration=duration, tier="720P", run=40.0 + 10.0 * duration, queue=1.0)
    mean, spread = times.run(5, "720P")
    assert mean == pytest.approx(90.0, rel=0.01) and spread < 0.05 * mean
    schedule = Schedule(times, clock=clock)
    view = TaskView(submitted_at=clock.now, duration=5, tier="720P")
    first = schedule.delay(view)
    assert 1.0 + 90 - 3 * spread < first < 91.0
    clock.now += first
    view.observe("RUNNING", {"submit_time": stamp(1000.0), "scheduled_time": stamp(1001.0)}, now=clock.now)
    looks = []
    while clock.now < 1001.0 + 90.0:
        looks.append(schedule.delay(view))
        clock.now += looks[-1]
    assert len(looks) <= 5 and all(MIN_INTERVAL <= d <= WINDOW_INTERVAL * 2 for d in looks)


def test_learning_corrects_a_prior_of_the_wrong_shape() -> None:
    """The emulator's model (40 s + 10 s a second, 1.5x at 1080P) is not our prior's."""
    times = RunTimes()
    for duration in (2, 8, 15):
        for tier in ("720P", "1080P"):
            times.add(
                duration=duration, tier=tier, queue=None, run=(40.0 + 10.0 * duration) * (1.5 if tier == "1080P" else 1)
            )
    for duration, tier in ((5, "720P"), (12, "1080P"), (3, "1080P")):
        mean, _ = times.run(duration, tier)
        assert mean == pytest.approx((40.0 + 10.0 * duration) * (1.5 if tier == "1080P" else 1), rel=0.05)


def test_one_finished_task_informs_every_other() -> None:
    times = RunTimes()
    times.add(duration=5, tier="720P", run=prior_run_seconds(5, "720P") * 0.5, queue=None)
    mean, spread = times.run(15, "1080P")
    assert mean < prior_run_seconds(15, "1080P") * 0.9
    assert spread > times.run(5, "720P")[1]  # less sure far from what it saw


def test_a_late_task_is_looked_at_less_and_less_often() -> None:
    clock = Clock()
    times = RunTimes()
    for _ in range(3):
        times.add(duration=2, tier="720P", run=50.0, queue=0.0)
    schedule = Schedule(times, clock=clock)
    view = TaskView(submitted_at=clock.now, duration=2, tier="720P", started_at=clock.now)
    clock.now += 200  # far past the predicted end
    intervals = []
    for _ in range(12):
        intervals.append(schedule.delay(view))
        clock.now += intervals[-1]
    assert intervals == sorted(intervals)
    assert intervals[-1] == MAX_INTERVAL


def test_a_task_still_pending_pushes_the_prediction_out() -> None:
    clock = Clock()
    times = RunTimes()
    for _ in range(3):
        times.add(duration=2, tier="720P", run=50.0, queue=0.0)
    schedule = Schedule(times, clock=clock)
    view = TaskView(submitted_at=clock.now, duration=2, tier="720P")
    clock.now += 100
    view.observe("PENDING", {"submit_time": stamp(1000.0)}, now=clock.now)
    end, _ = schedule.predicted_end(view)
    assert end == pytest.approx(clock.now + times.run(2, "720P")[0])


@given(
    st.floats(0.001, 1000),
    st.integers(2, 15),
    st.sampled_from(["720P", "1080P"]),
    st.lists(st.floats(0.01, 10_000), max_size=5),
    st.floats(0, 10_000),
)
def test_delays_are_always_finite_and_within_bounds(scale, duration, tier, runs, elapsed) -> None:
    clock = Clock()
    times = RunTimes(scale=scale)
    for run in runs:
        times.add(duration=duration, tier=tier, run=run, queue=0.0)
    schedule = Schedule(times, clock=clock)
    view = TaskView(submitted_at=clock.now, duration=duration, tier=tier)
    clock.now += elapsed
    delay = schedule.delay(view)
    assert 0 <= delay < 1e6
    assert delay >= MIN_INTERVAL * scale * 0.999 or delay == 0


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_finished_tasks_teach_the_schedule_what_the_server_measured(dashscope_emulator, wide_photo: Path) -> None:
    """The learned run time comes from the server's own timestamps, whatever our wall clock did.

    How many queries a task then needs depends on wall time (rendering, a loaded machine),
    so that figure is measured by `bench/polling.py`, never asserted here.
    """
    provider = provider_for(dashscope_emulator)
    before_mean, before_spread = provider.run_times.run(3, "720P")
    runs = []
    for _ in range(5):
        job = await provider.submit(request(wide_photo, duration=3))
        status, _polls = await drive(provider, job)
        assert status.state == "succeeded"
        seen = task(dashscope_emulator, job.task_id)
        assert seen["status"] == "SUCCEEDED"
        run, _queue = TaskView(submitted_at=0.0, duration=3, tier="720P").server_durations(seen)
        assert run is not None and run > 0
        runs.append(run)
    assert provider.run_times.samples == 5
    mean, spread = provider.run_times.run(3, "720P")
    # The posterior sits among what the server reported, far from the prior, and is surer of it.
    assert min(runs) * 0.8 <= mean <= max(runs) * 1.2, (mean, runs, before_mean)
    assert spread < before_spread
