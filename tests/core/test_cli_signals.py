"""SIGINT, SIGTERM and SIGHUP during `reelgen generate`: the remote job is cancelled, the user is told.

A real `reelgen` child process, the real bailian_wan provider and dashscope SDK, against the
emulator; the task is kept PENDING (a long simulated queue), where DashScope can cancel it.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers.cli import cli_env, read_stderr_until, reelgen_command, start_cli, wait_for
from tests.helpers.signals import restore_signals

GENERATE = ("generate", "photo.jpg", "--prompt", "waves at dusk", "--duration", "2", "--size", "1280*720")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    Image.effect_noise((480, 270), 40).convert("RGB").save(tmp_path / "photo.jpg")
    return tmp_path


def _signal_while_pending(emulator, workdir: Path, signum: int, *extra: str) -> tuple[int, str, str, str]:
    """Start a generation, wait until its task is PENDING at the emulator, signal it; (code, out, err, task id)."""
    process = start_cli(cli_env(emulator, workdir), workdir, *GENERATE, *extra, preexec_fn=restore_signals)
    try:
        task = wait_for(lambda: emulator.tasks(), what="the task at the emulator")[0]
        seen = read_stderr_until(process, task["task_id"])
        assert task["status"] == "PENDING"
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, seen + err, task["task_id"]


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=100_000)
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_cancels_the_pending_task_and_says_so(dashscope_emulator, workdir, signum, code) -> None:
    returncode, out, err, task_id = _signal_while_pending(dashscope_emulator, workdir, signum)
    job_id = f"bailian_wan:{task_id}"
    name = signal.Signals(signum).name
    assert returncode == code, err
    last = err.strip().splitlines()[-1]
    assert last == (
        f"interrupted by {name}: the remote job {job_id} was cancelled and will not be billed; "
        f"check it with: reelgen jobs resume {job_id}"
    )
    assert "Traceback" not in err and out == ""
    statuses = {t["task_id"]: t["status"] for t in dashscope_emulator.tasks()}
    assert statuses == {task_id: "CANCELED"}


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=100_000)
def test_the_json_error_after_a_signal_carries_the_resume_command(dashscope_emulator, workdir) -> None:
    returncode, out, _, task_id = _signal_while_pending(dashscope_emulator, workdir, signal.SIGTERM, "--json")
    error = json.loads(out)["error"]
    job_id = f"bailian_wan:{task_id}"
    assert returncode == 143 and error["exit_code"] == 143 and error["signal"] == "SIGTERM"
    assert error["job_id"] == job_id and error["remote_cancelled"] is True
    assert error["resume"] == f"reelgen jobs resume {job_id}"


def _ignore_sighup() -> None:
    restore_signals()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=100_000)
def test_an_ignored_sighup_stays_ignored_as_under_nohup(dashscope_emulator, workdir) -> None:
    process = start_cli(cli_env(dashscope_emulator, workdir), workdir, *GENERATE, preexec_fn=_ignore_sighup)
    try:
        task = wait_for(lambda: dashscope_emulator.tasks(), what="the task at the emulator")[0]
        read_stderr_until(process, task["task_id"])
        process.send_signal(signal.SIGHUP)
        with pytest.raises(subprocess.TimeoutExpired):  # still running
            process.communicate(timeout=2)
        assert process.poll() is None
        assert dashscope_emulator.tasks()[0]["status"] == "PENDING"
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        assert process.returncode == 143
        assert dashscope_emulator.tasks()[0]["status"] == "CANCELED"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=100_000)
def test_a_signal_while_waiting_for_a_slot_says_nothing_was_sent(dashscope_emulator, workdir) -> None:
    (workdir / "reelgen.toml").write_text("[limits.bailian_wan]\nconcurrency = 1\n")
    env = cli_env(dashscope_emulator, workdir)
    held = subprocess.run(
        [*reelgen_command(*GENERATE, "--no-wait")], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert held.returncode == 0, held.stderr  # its job holds the account's one slot
    process = start_cli(env, workdir, *GENERATE[:3], "a second shot", *GENERATE[4:], preexec_fn=restore_signals)
    try:
        seen = read_stderr_until(process, "waiting for a slot")
        assert "waiting for a slot" in seen
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143
    assert err.strip().splitlines()[-1] == "interrupted by SIGTERM before the create was sent: nothing is billed"
    assert len(dashscope_emulator.tasks()) == 1


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=0, run_seconds=400)
def test_a_signal_to_a_process_that_joined_another_job_leaves_that_job_running(dashscope_emulator, workdir) -> None:
    env = cli_env(dashscope_emulator, workdir)
    first = start_cli(env, workdir, *GENERATE, "--json")
    second = None
    try:
        task = wait_for(lambda: dashscope_emulator.tasks(), what="the task")[0]
        read_stderr_until(first, task["task_id"])
        second = start_cli(env, workdir, *GENERATE, preexec_fn=restore_signals)
        assert "attached" in read_stderr_until(second, "attached")
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=60)
        out, first_err = first.communicate(timeout=120)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    job_id = f"bailian_wan:{task['task_id']}"
    assert second.returncode == 143
    assert err.strip().splitlines()[-1] == (
        f"interrupted by SIGTERM: job {job_id} goes on in the process that started it (this request pays nothing "
        f"more); collect it with: reelgen jobs resume {job_id}"
    )
    assert first.returncode == 0, first_err
    assert json.loads(out)["task_id"] == task["task_id"]
    assert [t["status"] for t in dashscope_emulator.tasks()] == ["SUCCEEDED"]


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=100_000)
def test_a_signal_during_jobs_resume_is_handled_the_same_way(dashscope_emulator, workdir) -> None:
    env = cli_env(dashscope_emulator, workdir)
    submitted = subprocess.run(
        reelgen_command(*GENERATE, "--no-wait"), cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    process = start_cli(env, workdir, "jobs", "resume", job_id, "--json", preexec_fn=restore_signals)
    try:
        read_stderr_until(process, "queued")
        process.send_signal(signal.SIGHUP)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 129, err
    error = json.loads(out)["error"]
    assert error["signal"] == "SIGHUP" and error["job_id"] == job_id
    assert error["resume"] == f"reelgen jobs resume {job_id}" and err.strip().endswith(error["resume"])
    assert [t["status"] for t in dashscope_emulator.tasks()] == ["CANCELED"]
