"""The Python face of batches (`reelgen.batch`, `reelgen.abatch`), the results file, the budget, signals.

Real bailian_wan provider, real dashscope SDK, real emulator, real files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
from PIL import Image

import reelgen
from reelgen.batches import BatchProgress, ResultsFile, plan_batch, run_batch
from reelgen.config import CacheConfig, Config, JobsConfig, StorageConfig
from reelgen.errors import ValidationError
from reelgen.manifest import ManifestRow, read_manifest

SCALE = 0.01


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-batch-api-test-0123456789")


@pytest.fixture
def shot(tmp_path: Path) -> str:
    path = tmp_path / "shot.jpg"
    Image.effect_noise((480, 270), 40).convert("RGB").save(path, quality=80)
    return str(path)


def _config(emulator: Any, tmp_path: Path, **changes: Any) -> Config:
    settings: dict[str, Any] = {
        "provider": "bailian_wan",
        "storage": StorageConfig(url=str(tmp_path / "videos")),
        "cache": CacheConfig(url="none"),
        "jobs": JobsConfig(url=f"sqlite:///{tmp_path / 'jobs.db'}"),
        "providers": {"bailian_wan": {"base_url": emulator.base_url, "time_scale": SCALE}},
        "deadline": 60,
    }
    settings.update(changes)
    return Config(**settings)


def _requests(shot: str, count: int) -> list[tuple[str, reelgen.VideoRequest]]:
    return [
        (f"r{n}", reelgen.VideoRequest(prompt="waves", duration=2, size="1280*720", seed=n, reference_image=shot))
        for n in range(count)
    ]


@pytest.mark.dashscope_emulator(render_mode="still")
def test_batch_yields_every_row_as_it_finishes(dashscope_emulator, tmp_path, shot) -> None:
    updates: list[BatchProgress] = []
    config = _config(dashscope_emulator, tmp_path)
    seen = dict(
        reelgen.batch(_requests(shot, 6), config=config, results=tmp_path / "out.jsonl", on_update=updates.append)
    )
    assert set(seen) == {f"r{n}" for n in range(6)}
    assert all(isinstance(result, reelgen.VideoResult) for result in seen.values())
    assert {result.seed for result in seen.values()} == set(range(6))  # type: ignore[union-attr]
    assert updates[-1].done == 6 and updates[-1].spent == pytest.approx(6 * 0.6)
    # At most the account's limit ran at once.
    assert max(update.running + update.queued for update in updates) <= 5
    # A second run finds every row finished and creates nothing.
    again = list(reelgen.batch(_requests(shot, 6), config=config, results=tmp_path / "out.jsonl"))
    assert again == [] and dashscope_emulator.counters()["creates"] == 6


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_abatch_refuses_a_batch_with_an_invalid_row_before_anything_is_sent(
    dashscope_emulator, tmp_path, shot
) -> None:
    requests = _requests(shot, 4)
    requests[2] = ("r2", reelgen.VideoRequest(prompt="waves", duration=30, reference_image=shot))
    config = _config(dashscope_emulator, tmp_path)
    with pytest.raises(
        ValidationError, match=r"1 row\(s\) are invalid; nothing was submitted:\nline 3 \(id r2\): duration"
    ):
        async for _ in reelgen.abatch(requests, config=config):
            pass
    assert dashscope_emulator.counters()["creates"] == 0
    seen = [row_id async for row_id, _ in reelgen.abatch(requests, config=config, skip_invalid=True)]
    assert sorted(seen) == ["r0", "r1", "r3"]


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_submission_stops_before_the_spend_would_exceed_the_budget(dashscope_emulator, tmp_path, shot) -> None:
    """Prices went up after the batch was priced: what is billed, not the old estimate, meets the budget."""
    stale = _config(
        dashscope_emulator,
        tmp_path,
        pricing={
            "bailian_wan": {
                "currency": "CNY",
                "regions": ["cn-beijing"],
                "rates": [{"per_second": 0.05}],
                "as_of": "2026-01-01",
            }
        },
    )
    rows = [ManifestRow(id=row_id, request=attrs.evolve(r, duration=5)) for row_id, r in _requests(shot, 15)]
    plan = plan_batch(rows, config=stale)
    assert sum(plan.total().values()) == pytest.approx(15 * 0.25)  # within the budget below
    updates: list[BatchProgress] = []
    # Billed at today's prices: 1.5 CNY a row, against a budget of 4.
    outcomes = [
        outcome
        async for outcome in run_batch(
            plan, config=_config(dashscope_emulator, tmp_path), max_cost=4.0, on_update=updates.append
        )
    ]
    finished = [outcome for outcome in outcomes if outcome.result is not None]
    refused = [outcome for outcome in outcomes if outcome.result is None]
    # Until a bill arrives, the stale estimate (0.25 a row) is all there is: the first wave (the
    # account's 5 slots) goes out, and maybe the next, whose slots free before the first wave's
    # bills are in. Those bills (1.5 for an estimated 0.25) show the real price: nothing more is sent.
    created = dashscope_emulator.counters()["creates"]
    assert 5 <= created <= 10 and len(finished) == created
    assert sum(outcome.cost.amount for outcome in finished) == pytest.approx(1.5 * created)  # type: ignore[union-attr]
    assert len(refused) >= 1 and all(o.state == "not_submitted" and o.error.field == "max_cost" for o in refused)  # type: ignore[union-attr]
    assert updates[-1].stopped.startswith("budget: submitting row") and "past 4 CNY" in updates[-1].stopped
    assert updates[-1].pending == 15 - created


def test_a_torn_last_line_is_dropped_and_the_rest_kept(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_bytes(b'{"id": "a", "state": "succeeded"}\n{"id": "b", "state": "fail')
    results = ResultsFile(path)
    assert [line["id"] for line in results.lines] == ["a"]
    results.append({"id": "c", "state": "failed"})
    results.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "c"]


def test_relative_images_resolve_against_the_manifests_folder(tmp_path, shot) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "m.jsonl").write_text(
        json.dumps({"prompt": "p", "reference_image": "../shot.jpg"})
        + "\n"
        + json.dumps({"id": "remote", "prompt": "p", "reference_image": "https://example.com/a.png"})
        + "\n",
        encoding="utf-8",
    )
    rows, problems = read_manifest(folder / "m.jsonl")
    assert problems == []
    assert [row.id for row in rows] == ["1", "remote"]
    assert rows[0].request.reference_image == str(Path(shot).resolve())
    assert rows[1].request.reference_image == "https://example.com/a.png"


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=1500.0)
def test_sigterm_stops_submitting_cancels_queued_jobs_and_says_how_to_continue(
    dashscope_emulator, tmp_path, shot
) -> None:
    manifest = tmp_path / "shots.jsonl"
    manifest.write_text(
        "".join(
            json.dumps({"id": f"s{n}", "prompt": "waves", "duration": 2, "seed": n, "reference_image": shot}) + "\n"
            for n in range(8)
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGEN_", "DASHSCOPE_"))}
    env.update(
        DASHSCOPE_HTTP_BASE_URL=dashscope_emulator.base_url,
        DASHSCOPE_API_KEY="sk-batch-test-0123456789",
        REELGEN_PROVIDER="bailian_wan",
        REELGEN_STORAGE_URL=str(tmp_path / "videos"),
        REELGEN_CACHE_URL="none",
        REELGEN_JOBS_URL=f"sqlite:///{tmp_path / 'jobs.db'}",
        REELGEN_PROVIDERS__BAILIAN_WAN__TIME_SCALE=str(SCALE),
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "reelgen", "batch", str(manifest)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    jobs = tmp_path / "shots.results.jsonl.jobs"
    deadline = time.monotonic() + 60
    while not (jobs.exists() and len(jobs.read_text().splitlines()) == 5):
        assert time.monotonic() < deadline and child.poll() is None, "five jobs never got submitted"
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert "continue with: reelgen batch" in err and str(manifest) in err
    counters = dashscope_emulator.counters()
    # The five queued tasks were cancelled at the provider; nothing more was created.
    assert counters["tasks_created"] == 5
    assert counters["tasks_by_status"].get("CANCELED") == 5
    assert not (tmp_path / "shots.results.jsonl").exists() or (tmp_path / "shots.results.jsonl").read_text() == ""

    # The command it printed finishes the batch: the cancelled jobs (never billed) are submitted
    # again, each row ends once. The emulator's clock is pushed on so its long queue passes.
    import threading

    stop = threading.Event()

    def push_clock() -> None:
        while not stop.wait(0.1):
            dashscope_emulator.advance(5.0)

    pusher = threading.Thread(target=push_clock, daemon=True)
    pusher.start()
    try:
        again = subprocess.run(
            [sys.executable, "-m", "reelgen", "batch", str(manifest)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop.set()
        pusher.join()
    assert again.returncode == 0, again.stderr
    lines = [json.loads(line) for line in (tmp_path / "shots.results.jsonl").read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == [f"s{n}" for n in range(8)]
    counters = dashscope_emulator.counters()
    assert counters["tasks_by_status"].get("CANCELED") == 5
    assert counters["tasks_by_status"].get("SUCCEEDED") == 8 == counters["tasks_created"] - 5


@pytest.mark.dashscope_emulator(render_mode="still")
def test_the_eta_is_learned_from_the_accounts_history_for_the_same_tier_only(
    dashscope_emulator, tmp_path, shot
) -> None:
    import attrs

    config = _config(dashscope_emulator, tmp_path)
    list(reelgen.batch(_requests(shot, 2), config=config, results=tmp_path / "first.jsonl"))  # 720P history

    def first_update(requests: list[tuple[str, reelgen.VideoRequest]], name: str) -> BatchProgress:
        updates: list[BatchProgress] = []
        list(reelgen.batch(requests, config=config, results=tmp_path / name, on_update=updates.append))
        return updates[0]

    fresh_720 = [(f"n{n}", attrs.evolve(request, seed=100 + n)) for n, (_, request) in enumerate(_requests(shot, 2))]
    assert first_update(fresh_720, "second.jsonl").eta is not None  # before any row of this batch finished
    fresh_1080 = [(row_id, attrs.evolve(request, size="1920*1080")) for row_id, request in fresh_720]
    assert first_update(fresh_1080, "third.jsonl").eta is None  # no 1080P history: never borrowed from 720P


@pytest.mark.dashscope_emulator(render_mode="still")
def test_a_missing_api_key_stops_the_batch_before_any_row(dashscope_emulator, tmp_path, shot, monkeypatch) -> None:
    """It used to leave the batch waiting forever for outcomes that would never come."""
    from concurrent.futures import ThreadPoolExecutor

    from reelgen.errors import AuthenticationError

    monkeypatch.delenv("DASHSCOPE_API_KEY")
    config = _config(dashscope_emulator, tmp_path)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(lambda: list(reelgen.batch(_requests(shot, 3), config=config)))
        with pytest.raises(AuthenticationError, match="no DashScope API key"):
            running.result(timeout=60)  # a generous bound that only catches the hang
    assert dashscope_emulator.counters()["creates"] == 0
