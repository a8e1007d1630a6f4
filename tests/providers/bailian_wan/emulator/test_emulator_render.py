"""The result videos: documented dimensions, real H.264 at 30 fps, audio, the render cache."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from reelgen.probe import probe_video
from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig
from reelgen_bailian_wan.emulator import render as render_module
from reelgen_bailian_wan.emulator.render import RenderCache, RenderKey, render_still


def _video(api: Any, helpers: Any, image: bytes, tmp_path: Path, **parameters: Any) -> Path:
    payload = helpers.body(**parameters)
    payload["input"]["img_url"] = helpers.data_uri(image, "image/jpeg")
    result = api.wait(api.create_id(payload))
    assert result["output"]["task_status"] == "SUCCEEDED", result
    path = tmp_path / "out.mp4"
    path.write_bytes(requests.get(result["output"]["video_url"]).content)
    return path


@pytest.mark.dashscope_emulator(run_seconds=0.0)
def test_documented_750x1000_at_720p_renders_816x1104(api: Any, helpers: Any, tmp_path: Path) -> None:
    path = _video(api, helpers, helpers.image_bytes((750, 1000), fmt="JPEG"), tmp_path)
    probe = probe_video(path, decode=True)
    assert (probe.width, probe.height) == (816, 1104)
    assert (probe.fps, probe.duration, probe.frames, probe.codec) == (30.0, 2.0, 60, "h264")
    assert probe.has_audio


@pytest.mark.dashscope_emulator(run_seconds=0.0, render_mode="still")
def test_still_mode_keeps_size_fps_length_and_tracks(api: Any, helpers: Any, tmp_path: Path) -> None:
    path = _video(api, helpers, helpers.image_bytes((750, 1000), fmt="JPEG"), tmp_path, resolution="1080P", duration=3)
    probe = probe_video(path, decode=True)
    assert (probe.width, probe.height, probe.fps, probe.duration) == (1232, 1648, 30.0, 3.0)
    assert probe.has_audio
    silent = _video(api, helpers, helpers.image_bytes((750, 1000), fmt="JPEG"), tmp_path, audio=False)
    assert not probe_video(silent).has_audio


def test_identical_tasks_render_once(helpers: Any, tmp_path: Path) -> None:
    config = EmulatorConfig(
        time_scale=0.01, queue_seconds=0.0, run_seconds=0.0, render_mode="still", cache_dir=str(tmp_path)
    )
    with DashScopeEmulator(config) as emulator:
        api = helpers.Api(emulator)
        first = api.wait(api.create_id(seed=1))
        cache = emulator.service.renders
        assert cache.renders == 1
        second = api.wait(api.create_id(seed=1))
        assert cache.renders == 1
        assert first["output"]["video_url"] != second["output"]["video_url"]  # each task has its own URL
        api.wait(api.create_id(seed=2))
        assert cache.renders == 2
    assert len(list(tmp_path.glob("*.mp4"))) == 2


def test_queued_renders_nobody_waits_for_are_dropped(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, workers=1)
    gate = threading.Event()
    calls: list[RenderKey] = []

    def slow_render(key: RenderKey, image: bytes, path: Path) -> Path:
        calls.append(key)
        gate.wait(10)
        path.write_bytes(b"x")
        return path

    cache._render = slow_render  # type: ignore[method-assign]
    first, second = (RenderKey("sha", 16, 16, 2, n, False, "still") for n in (1, 2))
    running = cache.submit(first, b"")
    queued = cache.submit(second, b"")
    shared = cache.submit(second, b"")
    assert shared is queued
    cache.release(second, queued)
    assert not queued.cancelled()  # one waiter left
    cache.release(second, shared)
    assert queued.cancelled()
    gate.set()
    assert running.result(10).exists()
    assert calls == [first]


@pytest.mark.dashscope_emulator(run_seconds=0.0, render_mode="still")
def test_a_render_that_breaks_fails_the_task(
    api: Any, helpers: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(render_module, "render_still", broken)
    payload = helpers.body(seed=987654)  # a render no other test has cached
    output = api.wait(api.create_id(payload))["output"]
    assert (output["task_status"], output["code"]) == ("FAILED", "InternalError")


def test_render_still_writes_a_decodable_file(helpers: Any, tmp_path: Path) -> None:
    path = tmp_path / "still.mp4"
    render_still(helpers.IMAGE, path, width=320, height=240, duration=2, audio=True)
    probe = probe_video(path, decode=True)
    assert (probe.width, probe.height, probe.fps, probe.frames, probe.has_audio) == (320, 240, 30.0, 60, True)


def test_counters_still_answer_after_stop_with_renders_dropped(helpers: Any) -> None:
    config = EmulatorConfig(time_scale=0.0, queue_seconds=0.0, run_seconds=0.0, submit_rps=None)
    with DashScopeEmulator(config) as emulator:
        api = helpers.Api(emulator)
        for seed in range(3):  # three distinct animated renders: the later ones are still queued
            api.create_id(seed=555000 + seed)
    counters = emulator.counters()
    statuses = counters["tasks_by_status"]
    assert statuses["SUCCEEDED"] + statuses["FAILED"] + statuses["RUNNING"] == 3
    dropped = [t for t in emulator.tasks() if t["status"] == "FAILED"]
    assert all(t["code"] == "InternalError" for t in dropped)
