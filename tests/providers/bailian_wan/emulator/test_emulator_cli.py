"""`dashscope_command` (reelgen emulator dashscope) and `python -m reelgen_bailian_wan.emulator`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import click
import pytest
import requests
from click.testing import CliRunner

from reelgen_bailian_wan.emulator.cli import dashscope_command
from tests.helpers.signals import restore_signals


def test_is_a_click_command_named_dashscope_with_the_documented_options() -> None:
    assert isinstance(dashscope_command, click.Command)
    assert dashscope_command.name == "dashscope"
    options = {opt for param in dashscope_command.params for opt in param.opts}
    assert {
        "--host",
        "--port",
        "--time-scale",
        "--queue-seconds",
        "--run-seconds",
        "--strict-parameters",
        "--api-key",
        "--faults",
        "--fault-create-429",
        "--fault-query-503",
        "--fault-query-reset",
        "--fault-task-failed",
        "--fault-failed-code",
        "--fault-seed",
        "--fault-truncate-download",
        "--fault-early-expiry",
        "--concurrency-policy",
        "--render-mode",
    } <= options


def test_help() -> None:
    result = CliRunner().invoke(dashscope_command, ["--help"])
    assert result.exit_code == 0
    assert "Run a local DashScope video-synthesis emulator" in result.output


@pytest.mark.parametrize(
    "args",
    [["--fault-create-429", "2"], ["--faults", "bogus=1"], ["--time-scale", "-1"], ["--concurrency-policy", "x"]],
)
def test_bad_options_are_usage_errors(args: list[str]) -> None:
    result = CliRunner().invoke(dashscope_command, args)
    assert result.exit_code == 2, result.output


def _start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "reelgen_bailian_wan.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        preexec_fn=restore_signals,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+/api/v1)", line)
    assert match, line + (process.stderr.read() if process.stderr else "")
    return process, match.group(1)


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_module_runs_prints_its_url_and_stops_on_ctrl_c() -> None:
    began = time.perf_counter()
    process, base_url = _start("--api-key", "sk-one", "--fault-query-503", "1", "--time-scale", "0.01")
    try:
        assert time.perf_counter() - began < 10
        assert requests.get(f"{base_url}/tasks/x", headers={"Authorization": "Bearer sk-two"}).status_code == 401
        assert requests.get(f"{base_url}/tasks/x", headers={"Authorization": "Bearer sk-one"}).status_code == 503
        origin = base_url.removesuffix("/api/v1")
        assert requests.get(f"{origin}/__emulator__/counters").json()["faults"] == {"query_503": 1}
    finally:
        _stop(process)


def test_faults_from_the_environment() -> None:
    process, base_url = _start(env={"REELGEN_EMULATOR_FAULTS": "query_504=1,seed=3"})
    try:
        assert requests.get(f"{base_url}/tasks/x", headers={"Authorization": "Bearer k"}).status_code == 504
    finally:
        _stop(process)
