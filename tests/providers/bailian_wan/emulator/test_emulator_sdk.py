"""The official, unmodified dashscope 2.0.2 SDK end to end against the emulator.

1.x is pointed with `dashscope.base_http_api_url` (the `sdk` fixture restores it),
v2 with `Client(base_url=...)`; the key is always passed explicitly. These tests
use the real (animated) renderer and decode the downloaded video with PyAV.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dashscope
import pytest
import requests
from dashscope import VideoSynthesis
from dashscope.aigc.video_synthesis import AioVideoSynthesis
from dashscope.common.error import InvalidTask

from reelgen.probe import probe_video
from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig, Faults
from reelgen_bailian_wan.emulator.faults import FaultInjector

pytestmark = pytest.mark.dashscope_emulator(run_seconds=0.0)

MODEL = "wan2.6-i2v-flash"
KEY = "sk-emulator-test-0123456789"
PENDING_FOREVER = pytest.mark.dashscope_emulator(queue_seconds=3600.0, time_scale=1.0)


def cheap(**extra: Any) -> dict[str, Any]:
    """SDK keywords for the cheap task every test shares (cached render)."""
    return {"model": MODEL, "prompt": "a cat", "resolution": "720P", "duration": 2, "api_key": KEY, **extra}


def download(url: str, tmp_path: Path, name: str = "video.mp4") -> Path:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    path = tmp_path / name
    path.write_bytes(response.content)
    return path


def test_async_call_fetch_wait(sdk: DashScopeEmulator, helpers: Any, tmp_path: Path) -> None:
    created = VideoSynthesis.async_call(**cheap(img_url=helpers.IMAGE_URI))
    assert created.status_code == 200, created
    assert created.output.task_status == "PENDING"
    assert created.output.video_url == ""
    fetched = VideoSynthesis.fetch(created, api_key=KEY)
    assert fetched.status_code == 200
    assert fetched.output.task_id == created.output.task_id
    assert fetched.output.task_status in ("PENDING", "RUNNING", "SUCCEEDED")

    done = VideoSynthesis.wait(created, api_key=KEY)
    assert done.status_code == 200
    assert done.output.task_status == "SUCCEEDED"
    assert done.output.orig_prompt == "a cat"
    assert (done.usage.duration, done.usage.SR, done.usage.output_video_duration) == (2, 720, 2)

    probe = probe_video(download(done.output.video_url, tmp_path), decode=True)
    assert (probe.fps, probe.duration, probe.codec) == (30.0, 2.0, "h264")
    assert (probe.width, probe.height) == (1104, 816)  # 320x240 at 720P
    assert probe.has_audio  # audio defaults to true

    (task,) = sdk.tasks()
    assert task["input"]["function"] == "video-synthesis"
    assert task["input"]["extend_prompt"] is True


def test_call_with_options_and_a_silent_video(sdk: DashScopeEmulator, helpers: Any, tmp_path: Path) -> None:
    result = VideoSynthesis.call(
        **cheap(img_url=helpers.IMAGE_URI, seed=7, audio=False, watermark=True, prompt_extend=False, fps=24)
    )
    assert result.output.task_status == "SUCCEEDED"
    assert result.usage.audio is False
    probe = probe_video(download(result.output.video_url, tmp_path))
    assert not probe.has_audio
    assert probe.fps == 30.0  # fps is fixed; the SDK's fps=24 is ignored
    (task,) = sdk.tasks()
    assert task["seed"] == 7
    assert task["ignored"] == ["parameters.fps"]


def test_call_raises_invalid_task_when_create_fails(sdk: DashScopeEmulator, helpers: Any) -> None:
    with pytest.raises(InvalidTask, match="InvalidParameter"):
        VideoSynthesis.call(**cheap(img_url=helpers.IMAGE_URI, duration=1))
    refused = VideoSynthesis.async_call(**cheap(img_url=helpers.IMAGE_URI, duration=1))
    assert (refused.status_code, refused.code) == (400, "InvalidParameter")
    assert refused.message == "Input should be an integer from 2 to 15: parameters.duration"
    assert refused.request_id


@PENDING_FOREVER
def test_cancel(sdk: DashScopeEmulator, helpers: Any) -> None:
    created = VideoSynthesis.async_call(**cheap(img_url=helpers.IMAGE_URI))
    canceled = VideoSynthesis.cancel(created, api_key=KEY)
    assert canceled.status_code == 200
    assert canceled.request_id
    assert VideoSynthesis.fetch(created, api_key=KEY).output.task_status == "CANCELED"
    assert VideoSynthesis.wait(created, api_key=KEY).output.task_status == "CANCELED"
    again = VideoSynthesis.cancel(created, api_key=KEY)
    assert (again.status_code, again.code) == (400, "UnsupportedOperation")


@PENDING_FOREVER
def test_list(sdk: DashScopeEmulator, helpers: Any) -> None:
    for _ in range(3):
        VideoSynthesis.async_call(**cheap(img_url=helpers.IMAGE_URI))
    listing = VideoSynthesis.list(  # type: ignore[attr-defined]  # the SDK's stub omits it
        page_size=2, api_key=KEY
    )
    assert listing.status_code == 200
    assert (listing.output["total"], listing.output["total_page"], len(listing.output["data"])) == (3, 2, 2)
    assert VideoSynthesis.list(status="SUCCEEDED", api_key=KEY).output["total"] == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("form", ["path", "file_uri"])
def test_local_file_goes_through_the_upload_route(sdk: DashScopeEmulator, image_file: Path, form: str) -> None:
    source = str(image_file) if form == "path" else image_file.as_uri()
    result = VideoSynthesis.call(**cheap(img_url=source))
    assert result.output.task_status == "SUCCEEDED"
    counters = sdk.counters()
    assert (counters["policies"], counters["uploads"]) == (1, 1)
    (task,) = sdk.tasks()
    assert task["input"]["img_url"].startswith("oss://dashscope-instant/")
    assert task["input"]["img_url"].endswith("/first-frame.png")


def test_wait_rides_out_injected_503s(sdk: DashScopeEmulator, helpers: Any) -> None:
    # A seed whose first query fails and the next succeeds: 1.x retries 503 forever.
    seed = next(s for s in range(1000) if _second_ok(s))
    created = VideoSynthesis.async_call(**cheap(img_url=helpers.IMAGE_URI))
    helpers.wait_rendered(sdk)
    sdk.set_faults(Faults(seed=seed, query_503=0.5))
    assert VideoSynthesis.wait(created, api_key=KEY).output.task_status == "SUCCEEDED"
    assert sdk.counters()["faults"] == {"query_503": 1}


def _second_ok(seed: int) -> bool:
    injector = FaultInjector(Faults(seed=seed, query_503=0.5))
    return [injector.query_fault(), injector.query_fault()] == ["503", None]


async def test_aio_video_synthesis(sdk: DashScopeEmulator, helpers: Any, image_file: Path) -> None:
    try:
        created = await AioVideoSynthesis.async_call(**cheap(img_url=str(image_file)))
        assert created.status_code == 200 and created.output.task_status == "PENDING"
        done = await AioVideoSynthesis.wait(created, api_key=KEY)
        assert done.output.task_status == "SUCCEEDED"
        assert done.usage.SR == 720
        fetched = await AioVideoSynthesis.fetch(created, api_key=KEY)
        assert fetched.output.video_url == done.output.video_url
        listing = await AioVideoSynthesis.list(api_key=KEY)
        assert listing.output["total"] == 1
        refused = await AioVideoSynthesis.cancel(created, api_key=KEY)
        assert (refused.status_code, refused.code) == (400, "UnsupportedOperation")
    finally:
        await dashscope.close_shared_aio_session()  # type: ignore[func-returns-value,misc]  # stub says sync
    assert sdk.counters()["uploads"] == 1


@PENDING_FOREVER
async def test_aio_cancel_uses_the_trailing_slash_and_json_body(sdk: DashScopeEmulator, helpers: Any) -> None:
    try:
        created = await AioVideoSynthesis.async_call(**cheap(img_url=helpers.IMAGE_URI))
        canceled = await AioVideoSynthesis.cancel(created, api_key=KEY)
        assert canceled.status_code == 200
        fetched = await AioVideoSynthesis.fetch(created, api_key=KEY)
        assert fetched.output.task_status == "CANCELED"
    finally:
        await dashscope.close_shared_aio_session()  # type: ignore[func-returns-value,misc]  # stub says sync


def test_v2_client_videos(
    dashscope_emulator: DashScopeEmulator, helpers: Any, image_file: Path, tmp_path: Path
) -> None:
    from dashscope.v2.errors import BadRequestError, ContentFilterError

    with dashscope.Client(api_key=KEY, base_url=dashscope_emulator.base_url, max_retries=0) as client:
        job = client.videos.generate(
            model=MODEL,
            prompt="a cat",
            image_url=str(image_file),
            resolution="720P",
            duration=2,
            parameters={"audio": True},
            poll_interval=0.05,
        )
        assert job.status == "SUCCEEDED"
        assert job.usage is not None
        probe = probe_video(download(job.video_url or "", tmp_path), decode=True)
        assert (probe.fps, probe.duration, probe.width, probe.height) == (30.0, 2.0, 1104, 816)
        assert dashscope_emulator.counters()["uploads"] == 1

        created = client.videos.jobs.create(
            model=MODEL, prompt="again", image_url=helpers.IMAGE_URI, resolution="720P", duration=2
        )
        assert created.status in ("PENDING", "RUNNING")
        assert client.videos.jobs.fetch(created.task_id).task_id == created.task_id
        assert client.videos.jobs.wait(created, poll_interval=0.05).status == "SUCCEEDED"
        assert client.videos.jobs.list(page_size=5).total == 2

        with pytest.raises(BadRequestError) as refused:
            client.videos.jobs.create(model=MODEL, image_url=helpers.IMAGE_URI, resolution="480P", duration=2)
        assert refused.value.status_code == 400

        # A FAILED task raises with status_code 200 (reference §7.6); the code picks the class.
        dashscope_emulator.set_faults(Faults(task_failed=1.0, failed_code="DataInspectionFailed"))
        with pytest.raises(ContentFilterError) as failed:
            client.videos.generate(
                model=MODEL, image_url=helpers.IMAGE_URI, resolution="720P", duration=2, poll_interval=0.05
            )
        assert (failed.value.status_code, failed.value.code) == (200, "DataInspectionFailed")


def test_v2_client_cancel(helpers: Any) -> None:
    config = EmulatorConfig(queue_seconds=3600.0, render_mode="still")
    with DashScopeEmulator(config) as emulator, dashscope.Client(api_key=KEY, base_url=emulator.base_url) as client:
        created = client.videos.jobs.create(model=MODEL, image_url=helpers.IMAGE_URI, resolution="720P", duration=2)
        client.videos.jobs.cancel(created.task_id)
        assert client.videos.jobs.fetch(created.task_id).status == "CANCELED"
