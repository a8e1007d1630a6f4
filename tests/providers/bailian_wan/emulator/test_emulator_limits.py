"""The account limits of reference §6, per emulator instance, with the 429 shape."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig
from reelgen_bailian_wan.emulator.limits import RateLimiter

RATE_QUOTA = "Requests rate limit exceeded, please try again later."
pytestmark = pytest.mark.dashscope_emulator(render_mode="still")


def test_rate_limiter_uses_a_sliding_one_second_window(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("reelgen_bailian_wan.emulator.limits.time.monotonic", lambda: now[0])
    limiter = RateLimiter(2)
    assert [limiter.admit() for _ in range(3)] == [True, True, False]
    now[0] += 0.5
    assert not limiter.admit()  # refused calls do not count, but the window still holds two
    now[0] += 0.5
    assert limiter.admit() and limiter.admit() and not limiter.admit()
    assert all(RateLimiter(None).admit() for _ in range(1000))


@pytest.mark.dashscope_emulator(submit_rps=2)
def test_submit_rate_limit(api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator) -> None:
    statuses = [api.create().status_code for _ in range(2)]
    assert statuses == [200, 200]
    helpers.assert_error(api.create(), 429, "Throttling.RateQuota", RATE_QUOTA)
    counters = dashscope_emulator.counters()
    assert (counters["throttled"], counters["tasks_created"], counters["creates"]) == (1, 2, 3)


@pytest.mark.dashscope_emulator(submit_rps=1)
def test_rate_limit_counts_rejected_bodies_too(api: Any, helpers: Any) -> None:
    # The gateway throttles before it reads the body.
    helpers.assert_error(api.create({"model": ""}), 400, "BadRequest.EmptyModel")
    helpers.assert_error(api.create(), 429, "Throttling.RateQuota")


@pytest.mark.dashscope_emulator(query_qps=3)
def test_query_rate_limit_covers_queries_and_lists(api: Any, helpers: Any) -> None:
    task_id = api.create_id()
    assert [api.query(task_id).status_code for _ in range(2)] == [200, 200]
    assert api.session.get(f"{api.base}/tasks", headers={"Authorization": "Bearer k"}).status_code == 200
    helpers.assert_error(api.query(task_id), 429, "Throttling.RateQuota", RATE_QUOTA)


@pytest.mark.dashscope_emulator(upload_qps=1)
def test_upload_policy_rate_limit(api: Any, helpers: Any) -> None:
    url = f"{api.base}/uploads?action=getPolicy&model={helpers.MODEL}"
    headers = {"Authorization": "Bearer k"}
    assert api.session.get(url, headers=headers).status_code == 200
    helpers.assert_error(api.session.get(url, headers=headers), 429, "Throttling.RateQuota")


@pytest.mark.dashscope_emulator(submit_rps=None, query_qps=None, max_concurrent=None)
def test_limits_can_be_disabled(api: Any) -> None:
    ids = [api.create_id() for _ in range(12)]
    assert all(api.query(task_id).status_code == 200 for task_id in ids for _ in range(3))


def test_limits_are_per_emulator_instance(helpers: Any) -> None:
    config = EmulatorConfig(submit_rps=1, render_mode="still", time_scale=0.01)
    with DashScopeEmulator(config) as one, DashScopeEmulator(config) as two:
        assert helpers.Api(one).create().status_code == 200
        assert helpers.Api(two).create().status_code == 200
        assert helpers.Api(one).create().status_code == 429


@pytest.mark.dashscope_emulator(query_qps=None, submit_rps=None, max_concurrent=None)
def test_server_stays_responsive_under_concurrent_load(
    api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator
) -> None:
    # Bounded: 8 threads x 15 requests while renders run in the background.
    ids = [api.create_id(seed=n) for n in range(4)]
    failures: list[str] = []

    def hammer() -> None:
        client = helpers.Api(dashscope_emulator)
        for index in range(15):
            response = client.query(ids[index % len(ids)])
            if response.status_code != 200 or "task_status" not in response.json()["output"]:
                failures.append(response.text)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures
    assert dashscope_emulator.counters()["queries"] == 120
