"""The provider's life with a job: submit, poll, cancel in both states, loops, endpoints, the emulator."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import dashscope
import pytest

from reelgen.provider import Provider
from reelgen_bailian_wan import create_provider
from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig
from tests.providers.bailian_wan.helpers import SCALE, drive, provider_for, request, task
from tests.providers.bailian_wan.wire import created, scripted_server

pytestmark = pytest.mark.dashscope_emulator(render_mode="still")


def test_it_is_a_reelgen_provider() -> None:
    provider = create_provider({})
    assert isinstance(provider, Provider)
    assert provider.name == "bailian_wan" and provider.capabilities.model == "wan2.6-i2v-flash"


async def test_a_job_runs_to_a_result(dashscope_emulator, wide_photo: Path) -> None:
    provider = provider_for(dashscope_emulator)
    job = await provider.submit(request(wide_photo))
    assert job.id == f"bailian_wan:{job.task_id}" and job.model == "wan2.6-i2v-flash"
    status, polls = await drive(provider, job)
    assert status.state == "succeeded" and status.raw_status == "SUCCEEDED"
    assert dashscope_emulator.counters()["queries"] == polls


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=1000)
async def test_a_pending_task_is_cancelled(dashscope_emulator, wide_photo: Path) -> None:
    provider = provider_for(dashscope_emulator)
    job = await provider.submit(request(wide_photo))
    assert (await provider.poll(job)).state == "queued"
    assert await provider.cancel(job) is True
    status = await provider.poll(job)
    assert (status.state, status.raw_status) == ("cancelled", "CANCELED")
    assert task(dashscope_emulator, job.task_id)["status"] == "CANCELED"


@pytest.mark.dashscope_emulator(render_mode="still", run_seconds=1000)
async def test_a_running_task_cannot_be_cancelled_and_says_it_will_be_billed(
    dashscope_emulator, wide_photo: Path, caplog
) -> None:
    provider = provider_for(dashscope_emulator)
    job = await provider.submit(request(wide_photo))
    while (await provider.poll(job)).raw_status != "RUNNING":
        await asyncio.sleep(0.01)
    with caplog.at_level(logging.WARNING, logger="reelgen_bailian_wan"):
        assert await provider.cancel(job) is False
    assert "already RUNNING: it will finish and be billed" in caplog.text
    assert task(dashscope_emulator, job.task_id)["status"] == "RUNNING"


def test_the_same_provider_works_from_successive_event_loops(dashscope_emulator, wide_photo: Path) -> None:
    provider = provider_for(dashscope_emulator)

    async def one() -> str:
        job = await provider.submit(request(wide_photo))
        status, _ = await drive(provider, job)
        return status.state

    # reelgen.generate runs asyncio.run per call on a provider instance kept per process.
    assert asyncio.run(one()) == "succeeded"
    assert asyncio.run(one()) == "succeeded"


async def test_two_providers_with_different_endpoints_share_the_process(wide_photo: Path) -> None:
    before = (dashscope.base_http_api_url, dashscope.api_key)
    config = EmulatorConfig(time_scale=SCALE, queue_seconds=0, render_mode="still")
    with DashScopeEmulator(config) as first, DashScopeEmulator(config) as second:
        one, two = provider_for(first), provider_for(second)
        jobs = await asyncio.gather(one.submit(request(wide_photo)), two.submit(request(wide_photo)))
        results = await asyncio.gather(drive(one, jobs[0]), drive(two, jobs[1]))
        assert [status.state for status, _ in results] == ["succeeded", "succeeded"]
        assert first.counters()["tasks_created"] == 1 and second.counters()["tasks_created"] == 1
    # Endpoints and keys go per call; the SDK's module globals are never touched.
    assert (dashscope.base_http_api_url, dashscope.api_key) == before


async def test_the_bundled_emulator_starts_on_first_use_and_stops_on_aclose(wide_photo: Path, monkeypatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    provider = create_provider({"emulator": True, "emulator_time_scale": SCALE})
    assert provider.endpoint.emulator is None  # the factory is offline
    job = await provider.submit(request(wide_photo))
    emulator = provider.endpoint.emulator
    assert emulator is not None and emulator.running
    status, _ = await drive(provider, job)
    assert status.state == "succeeded"
    await provider.aclose()
    assert not emulator.running


async def test_a_submit_interrupted_mid_create_cancels_the_task_it_made(wide_photo: Path, caplog) -> None:
    with scripted_server() as server:
        server.routes["create"] = [created("late-task", delay=0.5)]
        server.routes["cancel"] = [created("late-task")]
        provider = provider_for(server)
        submit = asyncio.ensure_future(provider.submit(request(wide_photo)))
        for _ in range(500):  # until the create has reached the server (which answers 0.5 s later)
            if server.hits["create"]:
                break
            await asyncio.sleep(0.01)
        submit.cancel()
        with pytest.raises(asyncio.CancelledError):
            await submit
        with caplog.at_level(logging.WARNING, logger="reelgen_bailian_wan"):
            for _ in range(100):
                if server.hits["cancel"]:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)
        assert server.hits["cancel"] == 1
    assert "late-task" in caplog.text and "it was cancelled" in caplog.text


def test_importing_the_provider_does_not_import_the_sdk() -> None:
    import subprocess

    code = (
        "import sys, reelgen_bailian_wan as r; p = r.create_provider({}); "
        "from reelgen_bailian_wan import plugin; "
        "print('dashscope' in sys.modules, 'requests' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_warm_up_imports_the_sdk_that_building_the_provider_did_not() -> None:
    # `reelgen worker` calls warm_up() once per process as it boots: the first row's submit
    # then does not pay the SDK's import (about 0.6 s).
    import subprocess

    code = (
        "import sys, reelgen_bailian_wan as r; p = r.create_provider({}); "
        "before = 'dashscope' in sys.modules; p.warm_up(); print(before, 'dashscope' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
