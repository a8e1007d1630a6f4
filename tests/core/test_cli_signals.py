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

from tests.helpers.cli import cli_env, read_stderr_until, start_cli, wait_for
from tests.helpers.signals import restore_sigint

GENERATE = ("generate", "photo.jpg", "--prompt", "waves at dusk", "--duration", "2", "--size", "1280*720")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    Image.effect_noise((480, 270), 40).convert("RGB").save(tmp_path / "photo.jpg")
    return tmp_path


def _signal_while_pending(emulator, workdir: Path, signum: int, *extra: str) -> tuple[int, str, str, str]:
    """Start a generation, wait until its task is PENDING at the emulator, signal it; (code, out, err, task id)."""
    process = start_cli(cli_env(emulator, workdir), workdir, *GENERATE, *extra, preexec_fn=restore_sigint)
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
    restore_sigint()
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
