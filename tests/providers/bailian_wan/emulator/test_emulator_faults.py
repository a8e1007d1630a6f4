"""Seeded, deterministic fault injection: each fault, and its determinism."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from reelgen.errors import IntegrityError
from reelgen.probe import probe_video
from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig, Faults
from reelgen_bailian_wan.emulator.faults import FaultInjector


def faulty(**faults: Any) -> pytest.MarkDecorator:
    return pytest.mark.dashscope_emulator(faults=Faults(**faults), run_seconds=0.0, submit_rps=None)


@faulty(create_429=1.0)
def test_create_429(api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator) -> None:
    helpers.assert_error(api.create(), 429, "Throttling.RateQuota")
    counters = dashscope_emulator.counters()
    assert counters["faults"] == {"create_429": 1}
    assert counters["throttled"] == 1 and counters["tasks_created"] == 0


@faulty(create_5xx=1.0)
def test_create_5xx(api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator) -> None:
    helpers.assert_error(
        api.create(),
        500,
        "InternalError",
        "An internal error has occured, please try again later or contact service support.",
    )
    assert dashscope_emulator.counters()["faults"] == {"create_5xx": 1}


@faulty(create_429=1.0)
def test_create_faults_come_after_auth(api: Any, helpers: Any) -> None:
    helpers.assert_error(api.create(headers=api.headers(key=None)), 401, "InvalidApiKey")


@faulty(query_503=1.0)
def test_query_503(api: Any, helpers: Any) -> None:
    helpers.assert_error(
        api.query("any"),
        503,
        "ServiceUnavailable",
        "Service temporarily unavailable, possibly overloaded or not ready.",
    )


@faulty(query_504=1.0)
def test_query_504(api: Any, helpers: Any) -> None:
    helpers.assert_error(api.query("any"), 504, "RequestTimeOut")


@faulty(query_reset=1.0)
def test_query_connection_reset(api: Any, dashscope_emulator: DashScopeEmulator) -> None:
    with pytest.raises(requests.ConnectionError) as caught:
        requests.get(f"{api.base}/tasks/any", headers={"Authorization": "Bearer k"})
    assert "reset" in str(caught.value).lower() or "aborted" in str(caught.value).lower()
    assert dashscope_emulator.counters()["faults"] == {"query_reset": 1}
    # The server survives it.
    dashscope_emulator.set_faults(Faults())
    assert requests.get(f"{api.base}/tasks/any", headers={"Authorization": "Bearer k"}).status_code == 200


@pytest.mark.dashscope_emulator(run_seconds=0.0)
@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("InternalError", "An internal error has occured, please try again later or contact service support."),
        ("DataInspectionFailed", "Input or output data may contain inappropriate content."),
    ],
)
def test_task_failed_with_documented_codes(
    api: Any, dashscope_emulator: DashScopeEmulator, code: str, message: str
) -> None:
    dashscope_emulator.set_faults(Faults(task_failed=1.0, failed_code=code))
    result = api.wait(api.create_id())
    output = result["output"]
    assert (output["task_status"], output["code"], output["message"]) == ("FAILED", code, message)
    assert {"submit_time", "scheduled_time", "end_time"} <= set(output)
    assert "video_url" not in output and "usage" not in result
    assert dashscope_emulator.counters()["billed_seconds"] == 0


@faulty(slow_seconds=0.3, slow_probability=1.0)
def test_slow_responses(api: Any) -> None:
    response = api.query("any")
    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.3


@faulty(truncate_download=1.0)
def test_truncated_download(api: Any, dashscope_emulator: DashScopeEmulator) -> None:
    url = api.wait(api.create_id())["output"]["video_url"]
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        requests.get(url)
    response = requests.get(url, stream=True)
    declared = int(response.headers["Content-Length"])
    received = b""
    with pytest.raises(requests.exceptions.RequestException):
        for chunk in response.iter_content(8192):
            received += chunk
    assert 0 < len(received) < declared
    assert dashscope_emulator.counters()["faults"]["truncate_download"] == 2


@faulty(corrupt_download=1.0)
def test_corrupted_download(api: Any, tmp_path: Any) -> None:
    url = api.wait(api.create_id())["output"]["video_url"]
    response = requests.get(url)
    assert response.status_code == 200
    assert len(response.content) == int(response.headers["Content-Length"])
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(response.content)
    with pytest.raises(IntegrityError):
        probe_video(path, decode=True)


@faulty(early_expiry=1.0)
def test_early_url_expiry(api: Any, dashscope_emulator: DashScopeEmulator) -> None:
    url = api.wait(api.create_id())["output"]["video_url"]
    response = requests.get(url)
    assert response.status_code == 403
    assert "<Message>Request has expired.</Message>" in response.text
    assert dashscope_emulator.counters()["faults"] == {"early_expiry": 1}


def _create_statuses(faults: Faults, count: int = 24) -> list[int]:
    config = EmulatorConfig(faults=faults, submit_rps=None, render_mode="still")
    with DashScopeEmulator(config) as emulator:
        session = requests.Session()
        headers = {"Authorization": "Bearer k", "X-DashScope-Async": "enable"}
        url = emulator.base_url + "/services/aigc/video-generation/video-synthesis"
        # An empty body: 400 unless a fault answered first, so no task is created.
        return [session.post(url, json={}, headers=headers).status_code for _ in range(count)]


def test_faults_are_seeded_and_deterministic() -> None:
    faults = Faults(seed=11, create_429=0.3, create_5xx=0.3)
    first, second = _create_statuses(faults), _create_statuses(faults)
    assert first == second
    assert {429, 500, 400} <= set(first)
    assert _create_statuses(Faults(seed=12, create_429=0.3, create_5xx=0.3)) != first


def test_create_faults_do_not_depend_on_queries(helpers: Any) -> None:
    faults = Faults(seed=5, create_429=0.5, query_503=0.5)
    outcomes = []
    for polls in (0, 3):
        config = EmulatorConfig(faults=faults, submit_rps=None, query_qps=None, render_mode="still")
        with DashScopeEmulator(config) as emulator:
            api = helpers.Api(emulator)
            statuses = []
            for _ in range(10):
                statuses.append(api.create({}).status_code)
                for _ in range(polls):
                    api.query("x")
            outcomes.append(statuses)
    assert outcomes[0] == outcomes[1]


def test_task_fates_are_keyed_by_creation_order() -> None:
    faults = Faults(seed=3, task_failed=0.5, early_expiry=0.5)
    injector = FaultInjector(faults)
    fates = [injector.task_fate(n) for n in range(20)]
    assert fates == [FaultInjector(faults).task_fate(n) for n in range(20)]
    assert any(f[0] for f in fates) and not all(f[0] for f in fates)


@faulty(seed=3, task_failed=0.5)
def test_failed_tasks_match_their_fate(api: Any, dashscope_emulator: DashScopeEmulator) -> None:
    expected = [FaultInjector(Faults(seed=3, task_failed=0.5)).task_fate(n)[0] for n in range(6)]
    ids = [api.create_id() for _ in range(6)]
    statuses = [api.wait(task_id)["output"]["task_status"] for task_id in ids]
    assert statuses == ["FAILED" if fails else "SUCCEEDED" for fails in expected]


def test_reset_restarts_the_fault_streams(helpers: Any) -> None:
    config = EmulatorConfig(faults=Faults(seed=9, create_429=0.5), submit_rps=None)
    with DashScopeEmulator(config) as emulator:
        api = helpers.Api(emulator)
        first = [api.create({}).status_code for _ in range(10)]
        emulator.reset()
        assert [api.create({}).status_code for _ in range(10)] == first
