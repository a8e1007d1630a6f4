"""`reelgen new-provider`: the folder it writes is a plugin that passes the contract suite with no edits.

The generated plugin is not installed here (that would change the shared development
environment): its own test module, which subclasses the suite, runs in a child pytest
with the plugin's `src` on PYTHONPATH and its pytest plugin loaded by `-p`. The wheel
smoke test (`make smoke`, tests/packaging/smoke.py) installs it for real and runs
`pytest --reelgen-provider NAME`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from click.testing import CliRunner

from reelgen.cli import cli


def _generate(tmp_path: Path, name: str = "acme_video") -> Path:
    result = CliRunner().invoke(cli, ["new-provider", name, "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    return tmp_path / name


def test_it_writes_every_part_of_a_plugin(tmp_path: Path) -> None:
    folder = _generate(tmp_path)
    package = folder / "src" / "reelgen_acme_video"
    for part in ("__init__.py", "capabilities.py", "config.py", "provider.py", "plugin.py", "sandbox.py", "py.typed"):
        assert (package / part).is_file(), part
    assert (folder / "tests" / "test_contract.py").is_file()
    assert "reelgen new-provider acme_video" in (folder / "README.md").read_text()
    assert not list(folder.rglob("*.tmpl")) and "{{" not in "".join(p.read_text() for p in folder.rglob("*.py"))
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    assert project["name"] == "reelgen-acme-video"
    assert project["entry-points"]["reelgen"] == {"acme_video": "reelgen_acme_video.plugin"}
    assert "reelgen_acme_video.pytest_plugin" in project["entry-points"]["pytest11"].values()
    assert any(dep.startswith("reelgen>=") for dep in project["dependencies"])
    provider = (package / "provider.py").read_text()
    assert "BaseProvider[AcmeVideoConfig]" in provider and "config_class = AcmeVideoConfig" in provider


@pytest.mark.parametrize("name", ["Acme", "1acme", "acme-video", "class", "a" * 41, "acme_"])
def test_names_that_cannot_be_a_provider_are_refused(tmp_path: Path, name: str) -> None:
    result = CliRunner().invoke(cli, ["new-provider", name, "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "provider name" in result.output
    assert not any(tmp_path.iterdir())


def test_it_says_how_to_install_the_folder_not_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["new-provider", "acme"])
    assert result.exit_code == 0 and "pip install ./acme && pytest --reelgen-provider acme" in result.output


def test_it_never_writes_over_an_existing_folder(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "mine.txt").write_text("keep")
    result = CliRunner().invoke(cli, ["new-provider", "acme", "--dir", str(tmp_path)])
    assert result.exit_code != 0 and "not empty" in result.output
    assert [p.name for p in (tmp_path / "acme").iterdir()] == ["mine.txt"]


def test_the_generated_plugin_passes_the_contract_suite_as_written(tmp_path: Path) -> None:
    folder = _generate(tmp_path / "plugins", "acme")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "REELGEN_"))}
    env["PYTHONPATH"] = str(folder / "src")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "reelgen_acme.pytest_plugin", "tests"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,  # only catches a hang
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout


def test_bad_settings_of_the_generated_provider_name_the_key(tmp_path: Path) -> None:
    folder = _generate(tmp_path, "acme")
    code = (
        "from reelgen_acme import AcmeProvider\n"
        "from reelgen.errors import ConfigError\n"
        "for section in ({'poll_interval': 0}, {'poll_interval': 'soon'}, {'colour': 1}):\n"
        "    try:\n"
        "        AcmeProvider(section)\n"
        "    except ConfigError as exc:\n"
        "        print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(folder / "src")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    known = "base_url, api_key_file, request_timeout, poll_interval, poll_interval_max"
    assert done.stdout.splitlines() == [
        "providers.acme.poll_interval must be greater than 0, got 0.0",
        "providers.acme.poll_interval must be a number, got str 'soon'",
        f"unknown setting providers.acme.colour (known: {known})",
    ]
