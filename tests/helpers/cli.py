"""Running the real `reelgen` CLI in a child process against the DashScope emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: The provider's clock scale in these tests (the emulator fixture's default time scale).
SCALE = 0.01
API_KEY = "sk-cli-test-0123456789abcdef"


def cli_env(emulator: Any, workdir: Path, **extra: str) -> dict[str, str]:
    """An environment for a `reelgen` child: bailian_wan at `emulator`, its files in `workdir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGEN_", "DASHSCOPE_"))}
    env.update(
        PYTHONUNBUFFERED="1",
        DASHSCOPE_HTTP_BASE_URL=emulator.base_url,
        DASHSCOPE_API_KEY=API_KEY,
        REELGEN_PROVIDER="bailian_wan",
        REELGEN_STORAGE_URL=str(workdir / "videos"),
        REELGEN_CACHE_URL=f"sqlite:///{workdir / 'cache.db'}",
        REELGEN_JOBS_URL=f"sqlite:///{workdir / 'jobs.db'}",
        REELGEN_PROVIDERS__BAILIAN_WAN__TIME_SCALE=str(SCALE),
    )
    env.update(extra)
    return env


def reelgen_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "reelgen", *args]


def run_cli(env: dict[str, str], cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(reelgen_command(*args), capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def start_cli(env: dict[str, str], cwd: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        reelgen_command(*args),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def read_stderr_until(process: subprocess.Popen[str], needle: str, *, timeout: float = 60) -> str:
    """Read the child's stderr line by line until a line holds `needle` (or it ends, or `timeout`)."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while needle not in seen and time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen += line
    return seen


def wait_for(predicate: Any, *, timeout: float = 60, what: str = "the condition") -> Any:
    """Poll `predicate()` until it returns something truthy; fail after `timeout` seconds (a hang guard)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
