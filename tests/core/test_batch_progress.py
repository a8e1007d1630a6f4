"""Progress without a terminal: one line per state change, the real state named, a heartbeat in silences."""

from __future__ import annotations

import time

import pytest

from reelgen.batches import BatchProgress
from reelgen.cli.progress import BatchReporter, ProgressReporter, describe_batch
from reelgen.events import Event


def _event(kind: str, job_id: str | None = "bailian_wan:t1", **data: object) -> Event:
    return Event(kind=kind, provider="bailian_wan", job_id=job_id, data=data)  # type: ignore[arg-type]


def _progress(**changes: object) -> BatchProgress:
    fields: dict[str, object] = {
        "total": 10,
        "done": 2,
        "failed": 1,
        "running": 5,
        "delivering": 0,
        "queued": 0,
        "waiting": 2,
        "pending": 0,
        "spent": 1.2,
        "committed": 4.2,
        "currency": "CNY",
        "budget": 6.0,
        "eta": 95.0,
    }
    fields.update(changes)
    return BatchProgress(**fields)  # type: ignore[arg-type]


def test_a_single_generation_names_what_it_waits_for(capsys: pytest.CaptureFixture[str]) -> None:
    with ProgressReporter(heartbeat=60) as reporter:
        reporter(_event("estimate", job_id=None, amount=1.5, currency="CNY", basis="5 s x 0.3 CNY/s (720P)"))
        reporter(_event("waiting", job_id=None, reason="slot", in_use=5, limit=5))
        reporter(_event("retrying", job_id=None, step="submit", attempt=2, delay=1.5, reason="connection reset"))
        reporter(_event("submitted", task_id="t1"))
        reporter(_event("status", state="queued", raw_status="PENDING"))
        reporter(_event("progress", phase="generating", fraction=0.1, elapsed=3.0, eta=None))
        reporter(_event("status", state="running", raw_status="RUNNING"))
    lines = capsys.readouterr().err.splitlines()
    text = "\n".join(lines)
    assert "estimate 1.5 CNY: 5 s x 0.3 CNY/s (720P)" in text
    assert "waiting for a slot: 5/5 in use" in text
    assert "retrying submit (attempt 2) in 1.5 s: connection reset" in text
    assert "queued at bailian_wan, job bailian_wan:t1" in text
    assert "running at bailian_wan (RUNNING)" in text
    # A status that does not change the state prints nothing: submitted, then PENDING, is one queued line.
    assert sum("] queued" in line for line in lines) == 1


def test_a_batch_prints_a_line_per_change_and_none_for_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    with BatchReporter(heartbeat=60) as reporter:
        reporter.on_update(_progress())
        reporter.on_update(_progress(spent=1.3))  # spend alone: no new line
        reporter.on_update(_progress(done=3, running=4))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert "2/10 done, 5 running, 0 downloading, 0 queued at the provider, 2 waiting for a slot, 1 failed" in lines[0]
    assert "spent 1.20 CNY (+3.00 CNY in flight) of 6.00 CNY budget; ETA 1:35" in lines[0]


def test_silence_gets_a_heartbeat(capsys: pytest.CaptureFixture[str]) -> None:
    with BatchReporter(heartbeat=0.2) as reporter:
        reporter.on_update(_progress())
        time.sleep(1.0)
    lines = capsys.readouterr().err.splitlines()
    beats = [line for line in lines if "] still " in line]
    assert beats, lines
    assert "still 2/10 done" in beats[0]


def test_an_eta_is_shown_only_once_it_is_learned() -> None:
    assert describe_batch(_progress(eta=None)).endswith("ETA learning")
    assert "ETA" not in describe_batch(_progress(done=9, failed=1, running=0, waiting=0))


# The first job stays queued 6 s (600 s at the emulator's 0.01 scale): long enough for the
# second process to start and find the slot taken even on a loaded machine (1.5 s was not,
# with two test runs at once).
@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=600.0)
def test_generate_without_a_terminal_shows_retries_slots_queue_and_running(dashscope_emulator, tmp_path) -> None:
    """One clip, two processes, one slot: the second waits for it, its create is throttled once, then it queues."""
    import os
    import subprocess
    import sys

    from PIL import Image

    Image.effect_noise((480, 270), 40).convert("RGB").save(tmp_path / "shot.jpg")
    (tmp_path / "reelgen.toml").write_text("[limits.bailian_wan]\nconcurrency = 1\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGEN_", "DASHSCOPE_"))}
    env.update(
        DASHSCOPE_HTTP_BASE_URL=dashscope_emulator.base_url,
        DASHSCOPE_API_KEY="sk-progress-test-0123456789",
        REELGEN_PROVIDER="bailian_wan",
        REELGEN_STORAGE_URL=str(tmp_path / "videos"),
        REELGEN_CACHE_URL="none",
        REELGEN_JOBS_URL=f"sqlite:///{tmp_path / 'jobs.db'}",
        REELGEN_PROVIDERS__BAILIAN_WAN__TIME_SCALE="0.01",
    )

    def generate(prompt: str) -> subprocess.Popen[str]:
        image = str(tmp_path / "shot.jpg")
        command = [sys.executable, "-m", "reelgen", "generate", image, "-p", prompt, "--duration", "2"]
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        return subprocess.Popen(command, env=env, cwd=tmp_path, text=True, **pipes)  # type: ignore[call-overload]

    first = generate("waves, first")
    deadline = time.monotonic() + 60
    while not dashscope_emulator.tasks():
        assert time.monotonic() < deadline and first.poll() is None, "the first job was never created"
        time.sleep(0.05)
    dashscope_emulator.script_faults("create_429", times=1)
    second = generate("waves, second")
    _, first_err = first.communicate(timeout=120)
    _, second_err = second.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert second.returncode == 0, second_err
    assert "queued at bailian_wan" in first_err and "running at bailian_wan (RUNNING)" in first_err
    assert "waiting for a slot: 1/1 in use" in second_err
    retry = next(line for line in second_err.splitlines() if "retrying submit (attempt 1) in " in line)
    assert "Throttling" in retry or "429" in retry  # the reason, as the service gave it
