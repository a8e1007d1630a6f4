"""`reelgen batch` end to end: the real bailian_wan provider and dashscope SDK against the emulator.

Each test runs the CLI in a child process (so it can be killed) against an emulator in this
process, and checks what the emulator was asked to create: nothing for a refused batch,
each row exactly once for a batch that was killed and run again.
"""

from __future__ import annotations

import collections
import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

SCALE = 0.01
#: Row n of a test manifest asks for this seed, so the emulator's tasks name their row.
SEED = 1000


def _env(emulator: Any, tmp_path: Path, scale: float = SCALE) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGEN_", "DASHSCOPE_"))}
    env.update(
        DASHSCOPE_HTTP_BASE_URL=emulator.base_url,
        DASHSCOPE_API_KEY="sk-batch-test-0123456789",
        REELGEN_PROVIDER="bailian_wan",
        REELGEN_STORAGE_URL=str(tmp_path / "videos"),
        REELGEN_CACHE_URL="none",
        REELGEN_JOBS_URL=f"sqlite:///{tmp_path / 'jobs.db'}",
        REELGEN_PROVIDERS__BAILIAN_WAN__TIME_SCALE=str(scale),
    )
    return env


def _rows(folder: Path, count: int, *, duration: int = 2) -> list[dict[str, Any]]:
    (folder / "images").mkdir(exist_ok=True)
    Image.effect_noise((480, 270), 40).convert("RGB").save(folder / "images" / "shot.jpg", quality=80)
    return [
        {
            "id": f"shot-{n:02d}",
            "prompt": f"waves against a lighthouse, take {n}",
            "reference_image": "images/shot.jpg",  # relative: resolved against the manifest's folder
            "duration": duration,
            "size": "1280*720",
            "seed": SEED + n,
        }
        for n in range(count)
    ]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _batch(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "reelgen", "batch", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def _results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _created_per_row(emulator: Any) -> collections.Counter[int]:
    return collections.Counter(int(task["parameters"]["seed"]) - SEED for task in emulator.tasks())


@pytest.mark.dashscope_emulator(render_mode="still", time_scale=SCALE)
def test_invalid_rows_refuse_the_whole_batch_then_skip_invalid_runs_the_rest(dashscope_emulator, tmp_path) -> None:
    rows = _rows(tmp_path, 20)
    rows[4]["duration"] = 20  # wan2.6-i2v-flash takes 2 to 15 s
    rows[11]["reference_image"] = "images/missing.jpg"
    manifest = _jsonl(tmp_path / "shots.jsonl", rows)
    env = _env(dashscope_emulator, tmp_path)

    refused = _batch(env, str(manifest))
    assert refused.returncode == 2, refused.stderr
    assert "2 invalid row(s); nothing was submitted" in refused.stderr
    assert "line 5 (id shot-04): duration:" in refused.stderr and "2 to 15" in refused.stderr
    assert "line 12 (id shot-11): reference_image:" in refused.stderr
    assert dashscope_emulator.counters()["creates"] == 0
    assert not (tmp_path / "shots.results.jsonl").exists()

    done = _batch(env, str(manifest), "--skip-invalid", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rows"], summary["succeeded"], summary["failed"], summary["not_run"]) == (18, 18, 0, 0)
    results = _results(tmp_path / "shots.results.jsonl")
    assert sorted(line["id"] for line in results) == sorted(r["id"] for n, r in enumerate(rows) if n not in (4, 11))
    assert all(
        line["state"] == "succeeded" and Path(line["video_url"].removeprefix("file://")).is_file() for line in results
    )
    # Billed usage and its cost: 2 s at 720P with audio, Beijing prices.
    assert {
        (line["usage"]["output_video_duration"], line["cost"]["amount"], line["cost"]["currency"]) for line in results
    } == {(2.0, 0.6, "CNY")}
    assert summary["spent"] == pytest.approx(18 * 0.6)
    created = _created_per_row(dashscope_emulator)
    assert set(created) == set(range(20)) - {4, 11} and set(created.values()) == {1}


@pytest.mark.dashscope_emulator(render_mode="still", time_scale=SCALE)
def test_a_csv_manifest_parses_cells_by_field_type(dashscope_emulator, tmp_path) -> None:
    rows = _rows(tmp_path, 3)
    manifest = tmp_path / "shots.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["id", "prompt", "reference_image", "duration", "size", "seed", "options"]
        )
        writer.writeheader()
        for n, row in enumerate(rows):
            writer.writerow({**row, "options": json.dumps({"bailian_wan": {"audio": n != 1}}) if n else ""})
    out = tmp_path / "out" / "results.jsonl"
    done = _batch(_env(dashscope_emulator, tmp_path), str(manifest), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    results = {line["id"]: line for line in _results(out)}
    assert set(results) == {"shot-00", "shot-01", "shot-02"}
    assert [results[f"shot-0{n}"]["usage"]["audio"] for n in range(3)] == [True, False, True]
    assert results["shot-01"]["cost"]["amount"] == pytest.approx(2 * 0.15)  # silent: the lower price
    assert {int(task["parameters"]["seed"]) for task in dashscope_emulator.tasks()} == {SEED, SEED + 1, SEED + 2}


@pytest.mark.dashscope_emulator(render_mode="still", time_scale=SCALE)
def test_a_bad_csv_cell_names_its_line_and_field(dashscope_emulator, tmp_path) -> None:
    manifest = tmp_path / "bad.csv"
    manifest.write_text(
        "prompt,duration,seed,options\nfine,2,1,\nwaves,two,2,\nwaves,2,3.5,\nwaves,2,4,{not json\n", encoding="utf-8"
    )
    refused = _batch(_env(dashscope_emulator, tmp_path), str(manifest))
    assert refused.returncode == 2
    assert "line 3 (id 3): duration: 'two' is not a number" in refused.stderr
    assert "line 4 (id 4): seed: '3.5' is not a whole number" in refused.stderr
    assert "line 5 (id 5): options: not JSON" in refused.stderr
    # The first row is valid except that this image-to-video model needs a picture.
    assert "line 2 (id 2): reference_image:" in refused.stderr
    assert dashscope_emulator.counters()["creates"] == 0


@pytest.mark.dashscope_emulator(render_mode="still", time_scale=SCALE)
def test_dry_run_estimates_and_submits_nothing(dashscope_emulator, tmp_path) -> None:
    rows = _rows(tmp_path, 4)
    rows[3]["options"] = {"bailian_wan": {"resolution": "1080P", "audio": False}}
    manifest = _jsonl(tmp_path / "shots.jsonl", rows)
    done = _batch(_env(dashscope_emulator, tmp_path), str(manifest), "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    # 3 x 2 s x 0.3 + 2 s x 0.25 (1080P silent).
    assert json.loads(done.stdout)["estimate"] == {"CNY": pytest.approx(2.3)}
    assert "estimate: 2.30 CNY for 4 row(s)" in done.stderr
    assert dashscope_emulator.counters()["creates"] == 0


@pytest.mark.dashscope_emulator(render_mode="still", time_scale=SCALE)
def test_a_budget_below_the_estimate_submits_nothing(dashscope_emulator, tmp_path) -> None:
    manifest = _jsonl(tmp_path / "shots.jsonl", _rows(tmp_path, 5))
    refused = _batch(_env(dashscope_emulator, tmp_path), str(manifest), "--max-cost", "2.9")
    assert refused.returncode == 2
    assert "exceeds --max-cost 2.9" in refused.stderr and "3 CNY" in refused.stderr
    assert dashscope_emulator.counters()["creates"] == 0
    done = _batch(_env(dashscope_emulator, tmp_path), str(manifest), "--max-cost", "3")
    assert done.returncode == 0, done.stderr
    assert dashscope_emulator.counters()["creates"] == 5


@pytest.mark.dashscope_emulator(render_mode="still", time_scale=SCALE)
def test_progress_without_a_terminal_is_one_line_per_change(dashscope_emulator, tmp_path) -> None:
    manifest = _jsonl(tmp_path / "shots.jsonl", _rows(tmp_path, 7))
    done = _batch(_env(dashscope_emulator, tmp_path), str(manifest), "--max-cost", "10")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("estimate: 4.20 CNY for 7 row(s)")
    counts = [line for line in lines if " done, " in line]
    assert counts, done.stderr
    # Never two identical count lines in a row: a line means something changed.
    states = [line.split("] ", 1)[1].split(";")[0] for line in counts]
    assert all(a != b for a, b in itertools.pairwise(states))
    assert any("waiting for a slot" in line for line in counts)
    assert any("of 10.00 CNY budget" in line for line in counts)
    assert sum("succeeded ->" in line for line in lines) == 7
    assert lines[-1].startswith("7 succeeded, 0 failed, 0 not run, of 7; spent 4.20 CNY")
    # At most 5 rows ever ran at once (the account's limit), and the batch kept them busy.
    running = [int(line.split(" running")[0].rsplit(" ", 1)[1]) for line in counts]
    assert max(running) <= 5


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.dashscope_emulator(render_mode="still", time_scale=0.05, queue_seconds=0.0)
def test_kill_9_mid_batch_then_the_same_command_finishes_it_creating_each_row_once(
    dashscope_emulator, tmp_path
) -> None:
    count = 12
    manifest = _jsonl(tmp_path / "shots.jsonl", _rows(tmp_path, count))
    results = tmp_path / "shots.results.jsonl"
    jobs = Path(str(results) + ".jobs")
    env = _env(dashscope_emulator, tmp_path, scale=0.05)
    child = subprocess.Popen(
        [sys.executable, "-m", "reelgen", "batch", str(manifest)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        finished = lambda: len(results.read_text().splitlines()) if results.exists() else 0  # noqa: E731
        _wait_for(lambda: finished() >= 3, 90, "three finished rows")

        # Kill when rows are in flight at the provider and every created task is on record.
        def in_flight_and_recorded() -> bool:
            created = len(dashscope_emulator.tasks())
            recorded = len(jobs.read_text().splitlines()) if jobs.exists() else 0
            return created == recorded and created > finished() and finished() < count

        _wait_for(in_flight_and_recorded, 60, "rows in flight")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    before = _results(results)
    assert 3 <= len(before) < count
    in_flight = len(dashscope_emulator.tasks()) - len(before)
    assert in_flight > 0

    done = _batch(env, str(manifest), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["succeeded"], summary["not_run"]) == (count, 0)
    lines = _results(results)
    assert lines[: len(before)] == before  # the first run's lines are kept as they were
    assert sorted(line["id"] for line in lines) == [f"shot-{n:02d}" for n in range(count)]  # each row once
    created = _created_per_row(dashscope_emulator)
    assert set(created) == set(range(count)) and set(created.values()) == {1}, created
    assert dashscope_emulator.counters()["tasks_created"] == count
    assert not jobs.exists()  # a complete batch leaves no bookkeeping behind
