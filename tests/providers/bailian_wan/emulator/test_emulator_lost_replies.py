"""Ambiguous creates: the task is created, then its reply is lost (reset, stall, 5xx).

Each test drives the real `dashscope` SDK and then proves, through the task list
(`GET /tasks`, the SDK's `VideoSynthesis.list`), that the task exists although the
client saw a failure. That is the case a money-safe client must reconcile.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from dashscope import VideoSynthesis

from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig, Faults
from reelgen_bailian_wan.emulator.faults import FaultInjector

FAST: dict[str, Any] = {"run_seconds": 0.0, "submit_rps": None, "render_mode": "still"}


def emulator(**options: Any) -> pytest.MarkDecorator:
    mark: pytest.MarkDecorator = pytest.mark.dashscope_emulator(**FAST, **options)
    return mark


def _create(helpers: Any, **extra: Any) -> Any:
    return VideoSynthesis.async_call(
        model=helpers.MODEL,
        prompt="a cat",
        img_url=helpers.IMAGE_URI,
        resolution="720P",
        duration=2,
        api_key=helpers.KEY,
        **extra,
    )


def _listed(helpers: Any) -> list[dict[str, Any]]:
    rsp = VideoSynthesis.list(api_key=helpers.KEY, page_size=100)  # type: ignore[attr-defined]
    assert rsp.status_code == 200, rsp
    return list(rsp.output["data"])


@emulator()
def test_reset_after_create_leaves_a_task_the_client_never_heard_of(sdk: DashScopeEmulator, helpers: Any) -> None:
    # Twice, because the SDK resends once on a dropped connection (see the next test).
    sdk.script_faults("create_reply_reset", times=2)
    with pytest.raises(requests.ConnectionError):
        _create(helpers)
    listed = _listed(helpers)
    assert len(listed) == 2
    assert {row["task_id"] for row in listed} == {task["task_id"] for task in sdk.tasks()}
    counters = sdk.counters()
    assert counters["faults"] == {"create_reply_reset": 2}
    assert counters["creates"] == counters["tasks_created"] == 2
    assert counters["errors"] == 0  # no reply was sent at all


@emulator()
def test_the_sdk_resends_a_create_whose_reply_was_reset(sdk: DashScopeEmulator, helpers: Any) -> None:
    """dashscope 2.0.2 retries once on ConnectionError, POSTs included: one lost reply,
    two billed tasks, and the caller only hears of the second."""
    sdk.script_faults("create_reply_reset")
    rsp = _create(helpers)
    assert rsp.status_code == 200
    listed = _listed(helpers)
    assert len(listed) == 2
    assert rsp.output.task_id in {row["task_id"] for row in listed}
    assert sdk.counters()["faults"] == {"create_reply_reset": 1}


@emulator(faults=Faults(create_reply_stall=1.0))
def test_stall_after_create_times_the_client_out(sdk: DashScopeEmulator, helpers: Any) -> None:
    # The stall (30 s by default) outlasts the SDK's 1 s timeout; stopping the
    # emulator cuts it short, so the test does not wait for it.
    with pytest.raises(requests.Timeout):
        _create(helpers, request_timeout=1)
    sdk.set_faults(Faults())
    listed = _listed(helpers)
    assert len(listed) == 1  # a read timeout is not resent by the SDK
    assert listed[0]["task_id"] == sdk.tasks()[0]["task_id"]
    assert sdk.counters()["faults"] == {"create_reply_stall": 1}


@emulator(faults=Faults(create_reply_stall=1.0, create_reply_stall_seconds=0.0))
def test_a_stall_shorter_than_the_timeout_still_replies(sdk: DashScopeEmulator, helpers: Any) -> None:
    rsp = _create(helpers)
    assert rsp.status_code == 200
    assert [row["task_id"] for row in _listed(helpers)] == [rsp.output.task_id]


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "InternalError"), (503, "ServiceUnavailable"), (504, "RequestTimeOut"), (408, "RequestTimeOut")],
)
def test_5xx_after_create(helpers: Any, status: int, code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import dashscope

    config = EmulatorConfig(faults=Faults(create_reply_5xx=1.0, create_reply_status=status), **FAST)
    with DashScopeEmulator(config) as emulator:
        monkeypatch.setattr(dashscope, "base_http_api_url", emulator.base_url)
        rsp = _create(helpers)
        assert (rsp.status_code, rsp.code) == (status, code)
        assert rsp.output is None  # no task id reaches the client
        listed = _listed(helpers)
        assert len(listed) == 1 and listed[0]["task_id"] == emulator.tasks()[0]["task_id"]
        counters = emulator.counters()
        assert counters["faults"] == {"create_reply_5xx": 1}
        assert counters["tasks_created"] == 1 and counters["errors"] == 1


@emulator()
def test_faults_scripted_through_the_control_route(
    api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator
) -> None:
    origin = dashscope_emulator.origin
    reply = requests.post(f"{origin}/__emulator__/faults/script", json={"fault": "create_reply_5xx", "times": 2})
    assert reply.status_code == 200
    assert reply.json() == {"scripted": {"create": ["create_reply_5xx", "create_reply_5xx"]}}
    statuses = [api.create().status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert dashscope_emulator.counters()["tasks_created"] == 3
    assert requests.get(f"{api.base}/tasks", headers={"Authorization": f"Bearer {helpers.KEY}"}).json()["total"] == 3
    bad: Any
    for bad in ({"fault": "bogus"}, {"fault": "create_reply_5xx", "times": -1}, {"times": 1}, ["x"]):
        assert requests.post(f"{origin}/__emulator__/faults/script", json=bad).status_code == 400


@emulator()
def test_a_create_refused_before_the_task_consumes_its_scripted_fault(
    api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator
) -> None:
    dashscope_emulator.script_faults("create_reply_5xx")
    helpers.assert_error(api.create(resolution="4K"), 400, "InvalidParameter")
    assert api.create().status_code == 200
    assert dashscope_emulator.counters()["faults"] == {}
    # Auth comes before any fault: a 401 leaves the script pending.
    dashscope_emulator.script_faults("create_reply_5xx")
    helpers.assert_error(api.create(headers=api.headers(key=None)), 401, "InvalidApiKey")
    assert api.create().status_code == 500


@emulator()
def test_scripts_survive_set_faults_and_end_with_reset(dashscope_emulator: DashScopeEmulator, api: Any) -> None:
    pending = dashscope_emulator.script_faults("query_503", times=1)
    assert pending == {"query": ["query_503"]}
    dashscope_emulator.set_faults(Faults(seed=3))
    assert api.query("any").status_code == 503
    assert api.query("any").status_code == 200
    dashscope_emulator.script_faults("create_reply_reset", times=3)
    dashscope_emulator.reset()
    assert api.create().status_code == 200


def _statuses(helpers: Any, faults: Faults, script: list[str], count: int = 16) -> tuple[list[int], int]:
    """The create statuses a fresh emulator answers, and how many tasks it made."""
    with DashScopeEmulator(EmulatorConfig(faults=faults, **FAST)) as emulator:
        for fault in script:
            emulator.script_faults(fault)
        client = helpers.Api(emulator)
        statuses = [client.create().status_code for _ in range(count)]
        client.session.close()
        return statuses, emulator.counters()["tasks_created"]


def test_reply_faults_are_seeded_and_deterministic(helpers: Any) -> None:
    faults = Faults(seed=4, create_429=0.2, create_reply_5xx=0.4)
    first, created = _statuses(helpers, faults, [])
    assert (first, created) == _statuses(helpers, faults, [])
    assert {429, 500, 200} <= set(first)
    # Every create that was not refused made its task, the 500s included.
    assert created == sum(1 for status in first if status != 429)
    # A scripted fault takes its request without a draw: the seeded sequence just shifts.
    shifted, _ = _statuses(helpers, faults, ["create_5xx"], count=17)
    assert shifted == [500, *first]


def test_reply_fault_options_are_validated() -> None:
    with pytest.raises(ValueError, match="create_reply_status"):
        Faults(create_reply_status=418)
    with pytest.raises(ValueError, match="add up"):
        Faults(create_5xx=0.6, create_reply_reset=0.6)
    with pytest.raises(ValueError, match="stall"):
        Faults(create_reply_stall_seconds=-1)
    assert Faults(create_reply_stall=0.1).active and not Faults(create_reply_stall_seconds=5).active
    assert Faults.parse("create_reply_5xx=0.5,create_reply_status=503").create_reply_status == 503
    with pytest.raises(ValueError, match="cannot script"):
        FaultInjector(Faults()).script("task_failed")


def test_stopping_the_emulator_cuts_a_stalled_reply_short(helpers: Any) -> None:
    import threading
    import time

    config = EmulatorConfig(faults=Faults(create_reply_stall=1.0, create_reply_stall_seconds=600), **FAST)
    emulator = DashScopeEmulator(config).start()
    outcome: list[object] = []

    def call() -> None:
        client = helpers.Api(emulator)
        try:
            outcome.append(client.create().status_code)
        except requests.RequestException as exc:
            outcome.append(exc)
        finally:
            client.session.close()

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    deadline = time.monotonic() + 60  # only catches a hang
    while not emulator.tasks():  # once the task exists, its reply is stalled
        assert time.monotonic() < deadline, "the create never reached the emulator"
        time.sleep(0.01)
    emulator.stop()
    caller.join(60)  # only catches a hang: the stall is 600 s
    assert not caller.is_alive() and outcome
