"""Plugins from separately installed distributions: discovered, guarded, allow-listed, called."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

GOOD_PLUGIN = '''
import json, os
import reelgen

class EchoProvider:
    name = "echo"
    capabilities = reelgen.Capabilities(model="echo-1", duration_range=(1, 10), cancel="none")
    def validate(self, request): return []
    async def submit(self, request): raise NotImplementedError
    async def poll(self, job): raise NotImplementedError
    async def cancel(self, job): return False
    def poll_delay(self, job, attempt, elapsed): return 1.0
    async def aclose(self): pass

@reelgen.hookimpl
def reelgen_register_providers(register):
    register("echo", lambda config: EchoProvider())

@reelgen.hookimpl
def reelgen_event(event):
    with open(os.environ["EVENTS_FILE"], "a") as out:
        out.write(event.kind + "\\n")

@reelgen.hookimpl
def reelgen_register_commands(cli):
    import click
    @cli.command()
    def hello():
        """Say hello from a plugin."""
        click.echo("hello from plugin")
'''


def _make_distribution(root: Path, name: str, module: str, body: str) -> Path:
    source = root / name
    (source / module).mkdir(parents=True)
    (source / module / "__init__.py").write_text(textwrap.dedent(body))
    (source / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "1.0"

            [project.entry-points.reelgen]
            {module} = "{module}"

            [tool.setuptools]
            packages = ["{module}"]
            """
        )
    )
    return source


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A directory with three plugin distributions pip-installed into it."""
    root = tmp_path_factory.mktemp("plugins")
    target = root / "site"
    sources = [
        _make_distribution(root, "reelgen-echo", "reelgen_echo", GOOD_PLUGIN),
        _make_distribution(root, "reelgen-broken", "reelgen_broken", "raise RuntimeError('broken on import')\n"),
        _make_distribution(
            root,
            "reelgen-badhook",
            "reelgen_badhook",
            "import reelgen\n@reelgen.hookimpl\ndef reelgen_no_such_hook():\n    pass\n",
        ),
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--target",
            str(target),
            *map(str, sources),
        ],
        check=True,
    )
    return target


def _reelgen(site: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    environment = {**os.environ, "PYTHONPATH": str(site), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "reelgen", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=120,
    )


def test_installed_plugin_is_listed_and_broken_ones_are_reported(site):
    done = _reelgen(site, "providers", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    names = {p["name"] for p in payload["providers"]}
    assert {"echo", "preview"} <= names
    echo = next(p for p in payload["providers"] if p["name"] == "echo")
    assert echo["capabilities"]["model"] == "echo-1" and echo["plugin"] == "reelgen_echo"
    failed = {f["plugin"]: f["error"] for f in payload["failed_plugins"]}
    assert "broken on import" in failed["reelgen_broken"]
    assert "reelgen_no_such_hook" in failed["reelgen_badhook"]


def test_plugin_hooks_are_called_during_a_generation(site, tmp_path):
    Image.new("RGB", (160, 120), (10, 200, 90)).save(tmp_path / "photo.png")
    events = tmp_path / "events.txt"
    done = _reelgen(
        site,
        "generate",
        "photo.png",
        "--prompt",
        "grass",
        "--provider",
        "preview",
        "--duration",
        "1",
        "--fps",
        "8",
        "--size",
        "64*48",
        "--json",
        env={"EVENTS_FILE": str(events), "REELGEN_STORAGE_URL": str(tmp_path / "out")},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    kinds = events.read_text().split()
    kinds = [k for k in kinds if k not in ("estimate", "warning")]
    assert kinds[:2] == ["journaled", "submitted"] and kinds[-1] == "succeeded" and "stored" in kinds


def test_plugin_commands_are_added_to_the_cli(site):
    done = _reelgen(site, "hello")
    assert done.returncode == 0 and done.stdout.strip() == "hello from plugin"
    assert "hello" in _reelgen(site, "--help").stdout


def test_allow_list_loads_only_the_named_distributions(site):
    done = _reelgen(site, "providers", "--json", env={"REELGEN_LOAD_PLUGINS": "reelgen-echo"})
    payload = json.loads(done.stdout)
    assert {p["name"] for p in payload["providers"]} == {"echo"}
    assert payload["failed_plugins"] == []
    none = json.loads(_reelgen(site, "providers", "--json", env={"REELGEN_LOAD_PLUGINS": ""}).stdout)
    assert none["providers"] == []


def test_a_broken_plugin_does_not_stop_other_commands(site):
    done = _reelgen(site, "schema")
    assert done.returncode == 0 and json.loads(done.stdout)["version"]
