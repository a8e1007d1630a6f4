"""Dramatiq workers on a real redis-server, the real bailian provider and SDK against the emulator.

`reelgen worker` processes take the rows `reelgen batch MANIFEST --queue` sends; a worker
killed with `kill -9` mid-batch is replaced by the others, and no row is created twice.
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
from PIL import Image

from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig
from tests.scale._processes import ROOT

API_KEY = "sk-test-0123456789abcdef"
#: Generous: only catches a hang. A worker killed between taking a slot and naming its task
#: leaves a permit that comes back only when its lease (`reelgen.governor.LEASE`, 120 s)
#: runs out, never sooner (the task may exist), and a loaded machine (two test runs at once)
#: stretches the rest: 240 s was once not enough.
HANG = 480.0


@pytest.fixture
def emulator():
    # Simulated seconds pass 50x faster; still frames keep the rendering cheap on a shared box.
    with DashScopeEmulator(EmulatorConfig(time_scale=0.02, render_mode="still")) as running:
        yield running


def _setup(tmp_path: Path, redis_url: str, emulator: DashScopeEmulator, rows: int) -> tuple[dict[str, str], Path]:
    (tmp_path / "reelgen.toml").write_text(
        f"""
provider = "bailian_wan"
[storage]
url = "{tmp_path / "videos"}"
[cache]
url = "sqlite:///{tmp_path / "cache.db"}"
[jobs]
url = "sqlite:///{tmp_path / "jobs.db"}"
[cluster]
redis = "{redis_url}"
requeue_after = 2
[providers.bailian_wan]
base_url = "{emulator.base_url}"
time_scale = 0.02
""",
        encoding="utf-8",
    )
    Image.new("RGB", (480, 270), (40, 120, 200)).save(tmp_path / "frame.jpg")
    manifest = tmp_path / "shots.jsonl"
    manifest.write_text(
        "".join(
            json.dumps({"id": f"shot-{i}", "prompt": f"a lighthouse, take {i}", "reference_image": "frame.jpg"}) + "\n"
            for i in range(rows)
        ),
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REELGEN_CONFIG": str(tmp_path / "reelgen.toml"),
        "DASHSCOPE_API_KEY": API_KEY,
    }
    return env, manifest


def _workers(env: dict[str, str], cwd: Path, processes: int = 1) -> subprocess.Popen[bytes]:
    log = (cwd / f"worker-{time.monotonic_ns()}.log").open("wb")  # read when a test fails
    return subprocess.Popen(
        [sys.executable, "-m", "reelgen", "worker", "--processes", str(processes), "--threads", "2"],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,  # its own process group: the test can kill the whole worker
    )


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=60)


def _batch(env: dict[str, str], cwd: Path, manifest: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reelgen", "batch", str(manifest), "--queue", *flags],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
    )


def _results(manifest: Path) -> list[dict[str, object]]:
    path = manifest.with_name(manifest.stem + ".results.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _created_per_prompt(emulator: DashScopeEmulator) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task in emulator.tasks():
        prompt = str(task.get("prompt") or task.get("input", {}).get("prompt"))
        counts[prompt] = counts.get(prompt, 0) + 1
    return counts


def test_a_queued_batch_runs_on_workers_and_completes_its_results_file(tmp_path, redis_url, emulator):
    env, manifest = _setup(tmp_path, redis_url, emulator, rows=6)
    worker = _workers(env, tmp_path, processes=2)
    try:
        done = _batch(env, tmp_path, manifest)
    finally:
        _stop(worker)
    assert done.returncode == 0, done.stderr
    lines = _results(manifest)
    assert sorted(line["id"] for line in lines) == [f"shot-{i}" for i in range(6)]  # each row once
    assert all(line["state"] == "succeeded" for line in lines)
    assert all(Path(str(line["video_url"]).removeprefix("file://")).is_file() for line in lines)
    assert emulator.counters()["tasks_created"] == 6  # one create per row
    # Running it again sends nothing and creates nothing: the results file is complete.
    again = _batch(env, tmp_path, manifest)
    assert again.returncode == 0 and "0 row(s) sent" in again.stderr
    assert emulator.counters()["tasks_created"] == 6 and len(_results(manifest)) == 6


def test_no_wait_returns_after_sending_and_a_second_run_follows(tmp_path, redis_url, emulator):
    env, manifest = _setup(tmp_path, redis_url, emulator, rows=3)
    sent = _batch(env, tmp_path, manifest, "--no-wait")
    assert sent.returncode == 0 and "3 row(s) sent" in sent.stderr
    assert emulator.counters()["tasks_created"] == 0  # nobody is working yet
    worker = _workers(env, tmp_path)
    try:
        followed = _batch(env, tmp_path, manifest)
    finally:
        _stop(worker)
    assert followed.returncode == 0 and "0 row(s) sent" in followed.stderr, followed.stderr
    assert sorted(line["id"] for line in _results(manifest)) == ["shot-0", "shot-1", "shot-2"]
    assert emulator.counters()["tasks_created"] == 3


def test_a_worker_killed_mid_batch_is_replaced_and_nothing_is_created_twice(tmp_path, redis_url):
    # Tasks that run long enough (about 4 s) for the kill to land while jobs are in flight.
    with DashScopeEmulator(EmulatorConfig(time_scale=0.05, render_mode="still")) as emulator:
        env, manifest = _setup(tmp_path, redis_url, emulator, rows=8)
        doomed = _workers(env, tmp_path)
        survivor = _workers(env, tmp_path)
        try:
            assert _batch(env, tmp_path, manifest, "--no-wait").returncode == 0
            give_up = time.monotonic() + HANG
            while emulator.counters()["tasks_created"] < 3 and time.monotonic() < give_up:
                time.sleep(0.1)
            os.killpg(doomed.pid, signal.SIGKILL)  # mid-job: its polls and prefetched messages die with it
            doomed.wait(timeout=60)
            done = _batch(env, tmp_path, manifest)
        finally:
            _stop(survivor)
            if doomed.poll() is None:
                os.killpg(doomed.pid, signal.SIGKILL)
        assert done.returncode == 0, done.stderr
        lines = _results(manifest)
        assert sorted(line["id"] for line in lines) == sorted(f"shot-{i}" for i in range(8))
        assert all(line["state"] == "succeeded" for line in lines), lines
        assert emulator.counters()["tasks_created"] == 8  # nothing re-submitted
        assert set(_created_per_prompt(emulator).values()) == {1}
