"""The CLI: exit codes, --json, stdout/stderr split, Ctrl-C, config precedence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from PIL import Image

import reelgen
from reelgen import _registry as registry
from reelgen import plugins
from reelgen.cli import main
from reelgen.errors import AuthenticationError, ProviderFailed
from tests.helpers.fake_provider import FakeProvider, Script
from tests.helpers.signals import restore_signals


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REELGEN_CACHE_URL", f"sqlite:///{tmp_path / 'cache.db'}")
    monkeypatch.setenv("REELGEN_JOBS_URL", f"sqlite:///{tmp_path / 'jobs.db'}")
    Image.new("RGB", (160, 120), (90, 20, 200)).save(tmp_path / "photo.png")
    return tmp_path


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


GEN = (
    "generate",
    "photo.png",
    "--prompt",
    "a meadow",
    "--provider",
    "preview",
    "--duration",
    "1",
    "--fps",
    "8",
    "--size",
    "64*48",
)


def test_generate_prints_the_stored_path_on_stdout_then_hits_the_cache(workdir, capsys):
    code, out, err = run(capsys, *GEN)
    assert code == 0, err
    path = Path(out.strip())  # local storage: a path a person can open, not a file:// URI
    assert path.is_absolute() and path.suffix == ".mp4" and path.is_file()
    assert path.parent == (workdir / "output" / "videos").resolve()
    code, out, err = run(capsys, *GEN, "--json")
    result = json.loads(out)
    assert code == 0 and result["cached"] is True and result["video_url"] == path.as_uri()  # --json keeps the URL
    assert (result["duration"], result["fps"], result["size"]) == (1.0, 8.0, "64*48")


def test_no_cache_generates_again(workdir, capsys):
    run(capsys, *GEN)
    code, out, _ = run(capsys, *GEN, "--json", "--no-cache")
    assert code == 0 and json.loads(out)["cached"] is False


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--size", "65*48"), "multiples of 2"),
        (("--duration", "0"), "duration"),
        (("--option", "nonsense=1"), "unknown option preview.nonsense"),
        (("--motion-strength", "3"), "motion_strength"),
    ],
)
def test_invalid_requests_exit_2_with_a_message_that_says_what_to_fix(workdir, capsys, args, needle):
    code, out, err = run(capsys, *GEN, *args)
    assert code == 2 and needle in err and out == ""


def test_usage_errors_exit_2(workdir, capsys):
    code, _, err = run(capsys, "generate", "photo.png")
    assert code == 2 and "--prompt" in err
    code, _, err = run(capsys, *GEN[:-2], "--provider", "nope")
    assert code == 2 and "not installed" in err


def test_missing_image_file_exits_2_naming_the_path(workdir, capsys):
    code, _, err = run(capsys, "generate", "missing.png", "--prompt", "x", "--provider", "preview")
    assert code == 2 and "missing.png" in err


@pytest.fixture
def fake_plugin(monkeypatch):
    """Register a provider named `fake` through the real plugin manager."""
    holder: dict[str, FakeProvider] = {}
    module = types.ModuleType("fake_plugin")

    @reelgen.hookimpl
    def reelgen_register_providers(register):
        register("fake", lambda config: holder["provider"])

    module.reelgen_register_providers = reelgen_register_providers
    pm = plugins.get_plugin_manager()
    pm.register(module, name="fake_plugin")
    plugins._state.providers = None
    registry.clear_instances()
    yield holder
    pm.unregister(name="fake_plugin")
    plugins._state.providers = None
    registry.clear_instances()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (AuthenticationError("Invalid API-key provided.", provider="fake", code="InvalidApiKey"), 3),
        (ProviderFailed("The size is not match", provider="fake", code="InvalidParameter"), 4),
    ],
)
def test_provider_refusals_exit_3_and_failures_exit_4(workdir, capsys, fake_plugin, error, code):
    fake_plugin["provider"] = FakeProvider(Script(states=["failed"], failure=error))
    exit_code, out, err = run(
        capsys, "generate", "--prompt", "x", "--provider", "fake", "--duration", "1", "--size", "64*64", "--json"
    )
    assert exit_code == code
    payload = json.loads(out)["error"]
    assert payload["code"] == error.code and payload["exit_code"] == code
    assert error.code in err


def test_ctrl_c_cancels_the_remote_job_and_exits_130(workdir):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "reelgen", *GEN, "--option", "render_delay=30"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=restore_signals,
    )
    deadline = time.monotonic() + 30
    seen = ""
    while "job preview:" not in seen and time.monotonic() < deadline:  # the progress line naming the job
        seen += process.stderr.readline()
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, seen + err
    assert "was cancelled and will not be billed" in err and out == ""


def test_provider_flag_beats_environment_beats_file(workdir, capsys, monkeypatch):
    (workdir / "reelgen.toml").write_text('provider = "nope-from-file"\n')
    code, _, err = run(capsys, "generate", "photo.png", "--prompt", "x")
    assert code == 2 and "nope-from-file" in err
    monkeypatch.setenv("REELGEN_PROVIDER", "nope-from-env")
    code, _, err = run(capsys, "generate", "photo.png", "--prompt", "x")
    assert code == 2 and "nope-from-env" in err
    code, _, err = run(capsys, *GEN)
    assert code == 0, err


def test_bad_config_file_exits_2_naming_the_file_and_key(workdir, capsys):
    (workdir / "reelgen.toml").write_text("[storage]\nmax_bytes = -1\n")
    code, _, err = run(capsys, *GEN)
    assert code == 2 and "reelgen.toml" in err and "max_bytes" in err


def test_providers_and_schema_commands(workdir, capsys):
    code, out, _ = run(capsys, "providers", "--json")
    preview = next(p for p in json.loads(out)["providers"] if p["name"] == "preview")
    assert code == 0 and preview["capabilities"]["motion_strength"] is True
    code, out, _ = run(capsys, "providers")
    assert code == 0 and "preview" in out and "cancel: any" in out
    code, out, _ = run(capsys, "schema")
    assert code == 0 and set(json.loads(out)["$defs"]) == {"VideoRequest", "VideoResult"}


def test_cache_list_and_clear(workdir, capsys):
    run(capsys, *GEN)
    code, out, _ = run(capsys, "cache", "list", "--json")
    [entry] = json.loads(out)
    assert code == 0 and entry["prompt"] == "a meadow"
    code, out, _ = run(capsys, "cache", "list")
    assert code == 0 and out.rstrip().endswith('"a meadow"')
    code, out, _ = run(capsys, "cache", "clear", "--yes")
    assert code == 0 and "removed 1" in out
    code, out, _ = run(capsys, "cache", "list")
    assert "empty" in out


def test_deadline_flag_travels_through_the_config_overrides(workdir, capsys, monkeypatch):
    """CLI flags are the top layer of load_config(overrides=...): they replace the environment's value."""
    monkeypatch.setenv("REELGEN_DEADLINE", "-1")
    code, _, err = run(capsys, *GEN)
    assert code == 2 and "deadline" in err
    code, _, err = run(capsys, *GEN, "--deadline", "60")
    assert code == 0, err
