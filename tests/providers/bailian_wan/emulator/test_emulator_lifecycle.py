"""PENDING -> RUNNING -> SUCCEEDED/FAILED by simulated time, cancel, expiry, list.

Timing tests drive the emulator's clock with `advance()` instead of sleeping, so
timestamps can be checked to the millisecond.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import requests

from reelgen_bailian_wan.emulator import DashScopeEmulator
from reelgen_bailian_wan.emulator.state import modeled_run_seconds

# Slow simulated times at scale 1: nothing moves unless the test advances the clock.
CLOCKED = pytest.mark.dashscope_emulator(queue_seconds=10.0, run_seconds=100.0, time_scale=1.0)


@CLOCKED
def test_a_task_walks_through_its_states_with_exact_timestamps(
    api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator
) -> None:
    emu = dashscope_emulator
    task_id = api.create_id()
    pending = api.output(task_id)
    assert set(pending) == {"task_id", "task_status", "submit_time"}
    assert pending["task_status"] == "PENDING"
    assert re.match(helpers.TIMESTAMP, pending["submit_time"])
    submitted = helpers.parse_time(pending["submit_time"])
    assert abs(submitted - time.time()) < 5

    helpers.wait_rendered(emu)
    emu.advance(10.0)
    running = api.output(task_id)
    assert running["task_status"] == "RUNNING"
    assert set(running) == {"task_id", "task_status", "submit_time", "scheduled_time"}
    assert helpers.parse_time(running["scheduled_time"]) - submitted == pytest.approx(10.0, abs=0.002)

    # Real time passes too (the render took some), so leave a margin before the end.
    emu.advance(90.0)
    assert api.output(task_id)["task_status"] == "RUNNING"
    emu.advance(10.0)
    response = api.query(task_id)
    payload = response.json()
    done = payload["output"]
    assert done["task_status"] == "SUCCEEDED"
    assert list(done) == [
        "task_id",
        "task_status",
        "submit_time",
        "scheduled_time",
        "end_time",
        "orig_prompt",
        "video_url",
    ]
    assert helpers.parse_time(done["end_time"]) - submitted == pytest.approx(110.0, abs=0.002)
    assert done["orig_prompt"] == "a cat"
    assert payload["usage"] == {
        "duration": 2,
        "input_video_duration": 0,
        "output_video_duration": 2,
        "video_count": 1,
        "SR": 720,
        "audio": True,
    }
    assert payload["request_id"]
    url = done["video_url"]
    assert re.search(r"\.mp4\?Expires=\d+&OSSAccessKeyId=\w+&Signature=\S+$", url)
    expires = int(re.search(r"Expires=(\d+)", url).group(1))  # type: ignore[union-attr]
    assert expires - helpers.parse_time(done["end_time"]) == pytest.approx(86400, abs=1)


@pytest.mark.dashscope_emulator(run_seconds=0.0)
def test_success_waits_for_the_render(api: Any, dashscope_emulator: DashScopeEmulator) -> None:
    # run_seconds 0: the task is done exactly when its (uncached) video is.
    result = api.wait(api.create_id(seed=424242))
    assert result["output"]["task_status"] == "SUCCEEDED"
    video = requests.get(result["output"]["video_url"])
    assert video.status_code == 200
    assert video.headers["Content-Type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    (task,) = dashscope_emulator.service.store.all_tasks_raw()
    assert task.end_at is not None and task.render_done_at is not None
    assert task.end_at == pytest.approx(task.render_done_at, abs=0.001)


def test_modeled_run_time_grows_with_duration_and_tier() -> None:
    assert modeled_run_seconds(5, "720P") == 90
    assert modeled_run_seconds(15, "1080P") == 285
    assert modeled_run_seconds(2, "720P") < modeled_run_seconds(15, "720P") < modeled_run_seconds(15, "1080P")
    # The docs: generation typically takes 1 to 5 minutes.
    assert all(60 <= modeled_run_seconds(d, t) <= 300 for d in (2, 5, 10, 15) for t in ("720P", "1080P"))


@pytest.mark.dashscope_emulator(queue_seconds=1.0, run_seconds=None, time_scale=0.5)
def test_time_scale_multiplies_queue_and_run_time(api: Any, dashscope_emulator: DashScopeEmulator) -> None:
    task_id = api.create_id()
    (task,) = dashscope_emulator.service.store.all_tasks_raw()
    assert task.eligible_at - task.submit_at == pytest.approx(0.5)
    assert task.run_for == pytest.approx(modeled_run_seconds(2, "720P") * 0.5)
    assert api.output(task_id)["task_status"] == "PENDING"


# -- cancel ---------------------------------------------------------------------------


@CLOCKED
def test_cancel_a_pending_task(api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator) -> None:
    task_id = api.create_id()
    response = api.cancel(task_id)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert set(response.json()) == {"request_id"}
    canceled = api.output(task_id)
    assert canceled["task_status"] == "CANCELED"
    assert set(canceled) == {"task_id", "task_status", "submit_time", "end_time"}
    dashscope_emulator.advance(1000)
    assert api.output(task_id)["task_status"] == "CANCELED"
    helpers.assert_error(
        api.cancel(task_id),
        400,
        "UnsupportedOperation",
        "Failed to cancel the task, please confirm if the task is in PENDING status.",
    )
    assert dashscope_emulator.counters()["billed_seconds"] == 0


@CLOCKED
def test_cancel_accepts_the_aio_form(api: Any, dashscope_emulator: DashScopeEmulator) -> None:
    task_id = api.create_id()
    response = api.session.post(
        f"{api.base}/tasks/{task_id}/cancel/",
        json={"model": "", "parameters": {}, "input": ""},
        headers={"Authorization": "Bearer k"},
    )
    assert response.status_code == 200
    assert (
        api.session.get(f"{api.base}/tasks/{task_id}/", headers={"Authorization": "Bearer k"}).json()["output"][
            "task_status"
        ]
        == "CANCELED"
    )


@CLOCKED
def test_only_pending_tasks_can_be_cancelled(api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator) -> None:
    task_id = api.create_id()
    dashscope_emulator.advance(10)
    assert api.output(task_id)["task_status"] == "RUNNING"
    helpers.assert_error(api.cancel(task_id), 400, "UnsupportedOperation")
    helpers.wait_rendered(dashscope_emulator)
    dashscope_emulator.advance(100)
    assert api.output(task_id)["task_status"] == "SUCCEEDED"
    helpers.assert_error(api.cancel(task_id), 400, "UnsupportedOperation")
    helpers.assert_error(api.cancel("no-such-task"), 400, "UnsupportedOperation")


# -- unknown and expired ----------------------------------------------------------------


def test_unknown_task_ids_answer_unknown_on_200(api: Any) -> None:
    for path in ("no-such-task", "no-such-task/"):
        response = api.session.get(f"{api.base}/tasks/{path}", headers={"Authorization": "Bearer k"})
        assert response.status_code == 200
        payload = response.json()
        assert payload["output"] == {"task_id": "no-such-task", "task_status": "UNKNOWN"}
        assert payload["request_id"]
        assert "usage" not in payload


@pytest.mark.dashscope_emulator(task_ttl_seconds=3600, run_seconds=0.0)
def test_task_ids_expire_to_unknown(api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator) -> None:
    task_id = api.create_id()
    assert api.wait(task_id)["output"]["task_status"] == "SUCCEEDED"
    dashscope_emulator.advance(3599)
    assert api.output(task_id)["task_status"] == "SUCCEEDED"
    dashscope_emulator.advance(2)
    assert api.output(task_id) == {"task_id": task_id, "task_status": "UNKNOWN"}
    assert dashscope_emulator.counters()["tasks_by_status"]["UNKNOWN"] == 1
    listed = api.session.get(f"{api.base}/tasks", headers={"Authorization": "Bearer k"}).json()
    assert listed["total"] == 0
    helpers.assert_error(api.cancel(task_id), 400, "UnsupportedOperation")


@pytest.mark.dashscope_emulator(url_ttl_seconds=60, run_seconds=0.0)
def test_result_urls_expire(api: Any, dashscope_emulator: DashScopeEmulator) -> None:
    url = api.wait(api.create_id())["output"]["video_url"]
    assert requests.get(url).status_code == 200
    dashscope_emulator.advance(61)
    response = requests.get(url)
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/xml"
    assert "<Code>AccessDenied</Code>" in response.text
    assert "<Message>Request has expired.</Message>" in response.text
    # The task itself is still there (task ids live 24 h): same URL, still expired.
    assert api.output(api.emulator.tasks()[0]["task_id"])["video_url"] == url


# -- concurrency ---------------------------------------------------------------------------


@pytest.mark.dashscope_emulator(max_concurrent=2, queue_seconds=0.0, run_seconds=50.0, time_scale=1.0)
def test_queue_policy_holds_excess_tasks_pending_until_a_slot_frees(
    api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator
) -> None:
    first, second, third = (api.create_id() for _ in range(3))
    assert [api.output(t)["task_status"] for t in (first, second, third)] == ["RUNNING", "RUNNING", "PENDING"]
    helpers.wait_rendered(dashscope_emulator)
    dashscope_emulator.advance(50)
    outputs = [api.output(t) for t in (first, second, third)]
    assert [o["task_status"] for o in outputs] == ["SUCCEEDED", "SUCCEEDED", "RUNNING"]
    # The third started exactly when the first slot freed.
    assert outputs[2]["scheduled_time"] == outputs[0]["end_time"]
    dashscope_emulator.advance(50)
    assert api.output(third)["task_status"] == "SUCCEEDED"


@pytest.mark.dashscope_emulator(
    max_concurrent=1, concurrency_policy="reject", queue_seconds=0.0, run_seconds=10.0, time_scale=1.0
)
def test_reject_policy_answers_429(api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator) -> None:
    api.create_id()
    helpers.assert_error(api.create(), 429, "Throttling", "Requests throttling triggered.")
    assert dashscope_emulator.counters()["throttled"] == 1
    helpers.wait_rendered(dashscope_emulator)
    dashscope_emulator.advance(10)
    assert api.create().status_code == 200


# -- billing and counters ---------------------------------------------------------------------


@pytest.mark.dashscope_emulator(queue_seconds=0.0, run_seconds=0.0)
def test_only_succeeded_tasks_are_billed(api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator) -> None:
    from reelgen_bailian_wan.emulator import Faults

    ok = api.create_id()
    api.wait(ok)
    dashscope_emulator.set_faults(Faults(task_failed=1.0))
    failed = api.create_id()
    assert api.wait(failed)["output"]["task_status"] == "FAILED"
    counters = dashscope_emulator.counters()
    assert counters["billed_seconds"] == 2
    assert counters["billed_seconds_by_tier"] == {"720P": 2, "1080P": 0}
    assert counters["tasks_by_status"]["SUCCEEDED"] == counters["tasks_by_status"]["FAILED"] == 1
    assert counters["creates"] == counters["tasks_created"] == 2


def test_counters_count_every_route(api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator) -> None:
    task_id = api.create_id()
    api.create(headers=api.headers(key=None))
    api.query(task_id)
    api.cancel("nope")
    api.session.get(f"{api.base}/tasks", headers={"Authorization": "Bearer k"})
    api.session.get(f"{api.base}/uploads?action=getPolicy&model=m", headers={"Authorization": "Bearer k"})
    counters = dashscope_emulator.counters()
    assert {k: counters[k] for k in ("creates", "tasks_created", "queries", "cancels", "lists", "policies")} == {
        "creates": 2,
        "tasks_created": 1,
        "queries": 1,
        "cancels": 1,
        "lists": 1,
        "policies": 1,
    }
    assert counters["errors"] == 2
    assert set(counters) >= {
        "creates",
        "queries",
        "cancels",
        "lists",
        "uploads",
        "downloads",
        "billed_seconds",
        "throttled",
        "tasks_by_status",
    }


def test_reset_forgets_tasks_and_counters(api: Any, dashscope_emulator: DashScopeEmulator) -> None:
    task_id = api.create_id()
    dashscope_emulator.reset()
    assert dashscope_emulator.tasks() == []
    assert dashscope_emulator.counters()["creates"] == 0
    assert api.output(task_id)["task_status"] == "UNKNOWN"


def test_control_routes_over_http(api: Any, dashscope_emulator: DashScopeEmulator) -> None:
    origin = dashscope_emulator.origin
    api.create_id()
    assert requests.get(f"{origin}/__emulator__/health").json()["ok"] is True
    counters = requests.get(f"{origin}/__emulator__/counters").json()
    assert counters["creates"] == 1
    tasks = requests.get(f"{origin}/__emulator__/tasks").json()["tasks"]
    assert len(tasks) == 1 and tasks[0]["status"] in ("PENDING", "RUNNING", "SUCCEEDED")
    assert "now" in requests.post(f"{origin}/__emulator__/advance?seconds=5").json()
    faults = requests.post(f"{origin}/__emulator__/faults", json={"query_503": 1.0}).json()["faults"]
    assert faults["query_503"] == 1.0
    assert api.query("x").status_code == 503
    assert requests.post(f"{origin}/__emulator__/faults", json={"bogus": 1}).status_code == 400
    assert requests.post(f"{origin}/__emulator__/reset").json() == {"reset": True}
    assert requests.get(f"{origin}/__emulator__/counters").json()["creates"] == 0


# -- list -------------------------------------------------------------------------------------


@CLOCKED
def test_list_shape_paging_and_filters(api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator) -> None:
    ids = []
    for _ in range(3):
        ids.append(api.create_id())
        dashscope_emulator.advance(1)
    api.cancel(ids[0])
    headers = {"Authorization": f"Bearer {helpers.KEY}"}

    def listing(**params: Any) -> dict[str, Any]:
        response = api.session.get(f"{api.base}/tasks", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    everything = listing()
    assert list(everything) == ["total", "data", "total_page", "page_no", "request_id", "page_size"]
    assert (everything["total"], everything["total_page"], everything["page_no"], everything["page_size"]) == (
        3,
        1,
        1,
        10,
    )
    assert [row["task_id"] for row in everything["data"]] == ids[::-1]  # newest first
    row = everything["data"][-1]
    assert set(row) == {
        "api_key_id",
        "caller_parent_id",
        "caller_uid",
        "end_time",
        "gmt_create",
        "model_name",
        "region",
        "request_id",
        "status",
        "task_id",
        "user_api_unique_key",
    }
    assert row["status"] == "CANCELED" and row["model_name"] == helpers.MODEL and row["region"] == "cn-beijing"
    assert isinstance(row["gmt_create"], int) and row["end_time"] >= row["gmt_create"]
    assert helpers.KEY not in str(everything)

    page = listing(page_no=2, page_size=2)
    assert (page["total"], page["total_page"], len(page["data"])) == (3, 2, 1)
    assert page["data"][0]["task_id"] == ids[0]
    assert [r["task_id"] for r in listing(status="PENDING")["data"]] == ids[:0:-1]
    assert listing(model_name="other")["total"] == 0
    assert listing(api_key_id=row["api_key_id"])["total"] == 3
    assert listing(region="ap-southeast-1")["total"] == 0

    created = helpers.parse_time(api.output(ids[1])["submit_time"])
    compact = time.strftime("%Y%m%d%H%M%S", time.gmtime(created + 8 * 3600))
    assert {r["task_id"] for r in listing(start_time=compact)["data"]} <= {ids[1], ids[2]}
    assert listing(end_time="20000101000000")["total"] == 0

    for bad in ({"page_no": "x"}, {"page_no": 0}, {"page_size": 1000}, {"start_time": "yesterday"}):
        helpers.assert_error(api.session.get(f"{api.base}/tasks", params=bad, headers=headers), 400, "InvalidParameter")
