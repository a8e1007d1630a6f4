"""Single-flight and adoption across real processes (issue 8 item 3), real SDK against the emulator.

Each child is a separate Python process generating through `reelgen.generate`, sharing
the journal and cache files; the emulator runs in the test process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import reelgen
from reelgen.config import CacheConfig, Config, JobsConfig, StorageConfig
from reelgen.journal import get_journal
from tests.providers.bailian_wan.helpers import API_KEY, SCALE, provider_for, request

_CHILD = r"""
import json, sys
import reelgen
from reelgen.config import CacheConfig, Config, JobsConfig, StorageConfig
from reelgen_bailian_wan import create_provider

args = json.loads(sys.argv[1])
config = Config(
    storage=StorageConfig(url=args["storage"]),
    cache=CacheConfig(url=args["cache"]),
    jobs=JobsConfig(url=args["jobs"]),
    deadline=60,
)
provider = create_provider({"base_url": args["base_url"], "time_scale": args["scale"]})
request = reelgen.VideoRequest(prompt="waves against a lighthouse", duration=2, fps=30, size="1280*720",
                               reference_image=args["image"])
result = reelgen.generate(request, provider, config=config)
print(json.dumps({"task_id": result.task_id, "video_url": result.video_url, "cached": result.cached}))
"""


def _config(tmp_path: Path) -> Config:
    return Config(
        storage=StorageConfig(url=str(tmp_path / "videos")),
        cache=CacheConfig(url=f"sqlite:///{tmp_path / 'cache.db'}"),
        jobs=JobsConfig(url=f"sqlite:///{tmp_path / 'jobs.db'}"),
        deadline=60,
    )


def _spawn(emulator, tmp_path: Path, image: Path) -> subprocess.Popen[str]:
    args = {
        "storage": str(tmp_path / "videos"),
        "cache": f"sqlite:///{tmp_path / 'cache.db'}",
        "jobs": f"sqlite:///{tmp_path / 'jobs.db'}",
        "base_url": emulator.base_url,
        "scale": SCALE,
        "image": str(image),
    }
    env = {**os.environ, "DASHSCOPE_API_KEY": API_KEY}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


@pytest.mark.dashscope_emulator(render_mode="still")
def test_several_processes_sending_one_request_make_one_task(dashscope_emulator, wide_photo, tmp_path):
    children = [_spawn(dashscope_emulator, tmp_path, wide_photo) for _ in range(4)]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert dashscope_emulator.counters()["tasks_created"] == 1
    assert len({o["task_id"] for o in outputs}) == 1 and len({o["video_url"] for o in outputs}) == 1


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=1000)
def test_after_kill_9_the_next_identical_request_adopts_the_job(dashscope_emulator, wide_photo, tmp_path):
    config = _config(tmp_path)
    child = _spawn(dashscope_emulator, tmp_path, wide_photo)
    journal = get_journal(config)
    deadline = time.monotonic() + 60
    try:
        while True:
            entries = journal.list(states=["queued", "running"])
            if entries and entries[0].task_id:
                break
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the child never journaled its task"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    orphan = entries[0]
    assert orphan.orphaned()
    # The queue moves on; the next identical request must adopt the paid task, not pay again.
    dashscope_emulator.advance(1000)
    events = []
    result = reelgen.generate(
        request(wide_photo), provider_for(dashscope_emulator), config=config, on_event=events.append
    )
    assert result.task_id == orphan.task_id
    assert dashscope_emulator.counters()["tasks_created"] == 1
    assert any(e.kind == "attached" and e.data["why"] == "adopted" for e in events)
    assert journal.get(orphan.id).state == "succeeded"
    assert reelgen.generate(request(wide_photo), provider_for(dashscope_emulator), config=config).cached
