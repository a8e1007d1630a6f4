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
from reelgen_bailian_wan.emulator.state import key_id
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


def _batch_on_workers(
    env: dict[str, str], cwd: Path, manifest: Path, *, processes: int = 1
) -> subprocess.CompletedProcess[str]:
    """`reelgen batch MANIFEST --queue` while `reelgen worker` runs (stopped afterwards)."""
    worker = _workers(env, cwd, processes=processes)
    try:
        return _batch(env, cwd, manifest)
    finally:
        _stop(worker)


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
    done = _batch_on_workers(env, tmp_path, manifest, processes=2)
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
    followed = _batch_on_workers(env, tmp_path, manifest)
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


def test_a_row_whose_next_step_was_never_sent_is_sent_again_by_the_follower(tmp_path, redis_url, emulator, monkeypatch):
    # A worker killed after moving a row to its next check but before sending that check
    # leaves the row with no message: the redelivered step is stale (its number is old) and
    # drops itself. Played here without a kill: the row's submit runs in this process and
    # its follow-up check is never sent; then a worker takes the original submit message.
    env, manifest = _setup(tmp_path, redis_url, emulator, rows=2)
    _, _, following = _submitted_here(env, tmp_path, manifest, monkeypatch, row=1)
    assert following is not None and following.seq == 1  # ... and it is never sent
    done = _batch_on_workers(env, tmp_path, manifest)
    assert done.returncode == 0, done.stderr
    assert "row shot-1: its next step is overdue" in done.stderr
    assert sorted(line["id"] for line in _results(manifest)) == ["shot-0", "shot-1"]
    assert all(line["state"] == "succeeded" for line in _results(manifest))
    assert emulator.counters()["tasks_created"] == 2  # sending it again created nothing


def _submitted_here(env, tmp_path, manifest, monkeypatch, *, row: int):
    """Send the manifest's rows (no worker yet), then run row `row`'s submit step in this process.

    Returns (config, task, the step's answer): the follow-up it asks for is not sent."""
    import asyncio

    from reelgen.cluster.work import Task, submit_step
    from reelgen.config import load_config

    sent = _batch(env, tmp_path, manifest, "--no-wait")
    assert sent.returncode == 0 and "row(s) sent" in sent.stderr, sent.stderr
    monkeypatch.setenv("DASHSCOPE_API_KEY", API_KEY)
    config = load_config(tmp_path / "reelgen.toml")
    task = Task(
        batch=_batch_of(sent.stderr),
        row=f"shot-{row}",
        provider="bailian_wan",
        request={"prompt": f"a lighthouse, take {row}", "reference_image": str(tmp_path / "frame.jpg")},
        line=row + 1,
    )
    return config, task, asyncio.run(submit_step(task, config))


def _batch_of(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("batch "):
            return line.split()[1].rstrip(":")
    raise AssertionError(f"no batch id in {stderr!r}")


def test_rows_of_two_accounts_run_on_workers_each_with_its_own_key(tmp_path, redis_url, emulator):
    with DashScopeEmulator(EmulatorConfig(time_scale=0.02, render_mode="still")) as second:
        env, manifest = _setup(tmp_path, redis_url, emulator, rows=4)
        env["STUDIO_B_KEY"] = "sk-test-b-0123456789abcdef"  # each worker reads its own account's key
        with (tmp_path / "reelgen.toml").open("a", encoding="utf-8") as config:
            config.write(
                f'[accounts.studio-b]\nprovider = "bailian_wan"\nbase_url = "{second.base_url}"\n'
                'api_key_env = "STUDIO_B_KEY"\n'
            )
        rows = [json.loads(line) for line in manifest.read_text().splitlines()]
        for number, row in enumerate(rows):
            if number % 2:
                row["account"] = "studio-b"
        manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        done = _batch_on_workers(env, tmp_path, manifest)
        assert done.returncode == 0, done.stderr
        assert all(line["state"] == "succeeded" for line in _results(manifest))
        assert _created_per_prompt(emulator) == {"a lighthouse, take 0": 1, "a lighthouse, take 2": 1}
        assert _created_per_prompt(second) == {"a lighthouse, take 1": 1, "a lighthouse, take 3": 1}
        assert {task["api_key_id"] for task in second.tasks()} == {key_id("sk-test-b-0123456789abcdef")}


def test_a_worker_without_the_rows_account_fails_the_row_saying_so(tmp_path, redis_url, emulator, monkeypatch):
    import asyncio

    from reelgen.cluster.queued import state_for
    from reelgen.cluster.work import Task, submit_step
    from reelgen.config import load_config

    _setup(tmp_path, redis_url, emulator, rows=1)
    monkeypatch.setenv("DASHSCOPE_API_KEY", API_KEY)
    config = load_config(tmp_path / "reelgen.toml")
    task = Task(batch="b-1", row="r1", provider="bailian_wan", request={"prompt": "waves"}, account="studio-z")
    assert asyncio.run(submit_step(task, config)) is None
    line = state_for(config, "b-1").done()["r1"]
    assert line["state"] == "failed" and "no account 'studio-z'" in line["message"], line
    assert emulator.counters()["tasks_created"] == 0


def test_a_copy_of_a_check_while_another_step_drives_the_job_keeps_the_rows_check_number(
    tmp_path, redis_url, emulator, monkeypatch
):
    # The follower sends a copy of an overdue row's check; if the row's job is being driven
    # (a long reconciliation, a `jobs resume`), the copy must not move the row's check number
    # on: the driver's own next step (or its "start the row over") would then be stale, and
    # a row whose create was proved never made would fail instead of starting over.
    import asyncio

    from reelgen.cluster.queued import state_for
    from reelgen.cluster.work import Check, check_step
    from reelgen.journal import Owner, _process_start, get_journal

    env, manifest = _setup(tmp_path, redis_url, emulator, rows=1)
    config, task, first = _submitted_here(env, tmp_path, manifest, monkeypatch, row=0)
    state = state_for(config, task.batch)
    assert isinstance(first, Check) and state.seq("shot-0") == 1
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        journal = get_journal(config)
        assert journal is not None
        entry = journal.get(first.ref)
        assert entry is not None and entry.owner is None
        other = Owner(host=Owner.current().host, pid=driver.pid, started=_process_start(driver.pid))
        assert journal.adopt(entry.id, None, other) is not None  # another live process drives it now
        again = asyncio.run(check_step(task, first, config))
        assert isinstance(again, Check) and again.seq == 1, again
        assert state.seq("shot-0") == 1  # the driver's step is still the live one
    finally:
        driver.kill()
        driver.wait()
