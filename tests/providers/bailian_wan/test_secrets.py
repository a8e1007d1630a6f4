"""The API key never leaves the process's memory: not in output, errors, logs or any stored file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig

KEY = "sk-secret0123456789abcdef0123456789"


def _everything_written(root: Path) -> bytes:
    return b"".join(path.read_bytes() for path in root.rglob("*") if path.is_file())


@pytest.mark.parametrize("accepted", [True, False], ids=["generated", "refused"])
def test_the_key_appears_nowhere(tmp_path: Path, accepted: bool) -> None:
    Image.new("RGB", (640, 360), (20, 90, 160)).save(tmp_path / "photo.jpg")
    keys = {KEY} if accepted else {"sk-some-other-key-0000000000"}
    config = EmulatorConfig(api_keys=keys, time_scale=0.005, queue_seconds=0, render_mode="still")
    with DashScopeEmulator(config) as emulator:
        env = {
            **os.environ,
            "DASHSCOPE_API_KEY": KEY,
            "DASHSCOPE_HTTP_BASE_URL": emulator.base_url,
            "DASHSCOPE_LOGGING_LEVEL": "debug",  # the SDK's own logging, at its most verbose
            "REELGEN_PROVIDERS__BAILIAN_WAN__TIME_SCALE": "0.005",
            "REELGEN_CACHE_URL": f"sqlite:///{tmp_path / 'state' / 'cache.db'}",
            "REELGEN_JOBS_URL": f"sqlite:///{tmp_path / 'state' / 'jobs.db'}",
        }
        done = subprocess.run(
            [sys.executable, "-m", "reelgen", "generate", "photo.jpg", "--prompt", "sea", "--provider",
             "bailian_wan", "--duration", "2", "--size", "1280*720", "--json"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        received = repr(emulator.tasks())
    assert done.returncode == (0 if accepted else 3), done.stderr[-2000:]
    assert KEY not in done.stdout + done.stderr
    assert KEY not in received
    assert KEY.encode() not in _everything_written(tmp_path)
    if accepted:
        assert (tmp_path / "output" / "videos").is_dir()
        assert (tmp_path / "state" / "jobs.db").exists()
