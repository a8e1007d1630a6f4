"""The four distributions are publishable, and nothing tells a user to install from an index that has none.

Defects these guard: exact pins in runtime dependencies (`dashscope==2.0.2`), distributions
without a licence file or README of their own, `reelgen --version` naming only the core,
`pip install reelgen-...` in docs and messages while nothing is published, and a provider
guide that leaves capability fields or methods undocumented.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import attrs
import pytest
import tomllib
from click.testing import CliRunner
from packaging.requirements import Requirement

from reelgen import Capabilities, OptionSpec, Provider
from reelgen.cli import cli

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {
    "reelgen": "core",
    "reelgen-preview": "providers/preview",
    "reelgen-bailian-wan": "providers/bailian_wan",
    "reelgen-contracts": "contracts",
}


def _project(folder: str) -> dict:
    return tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_version_names_every_installed_reelgen_distribution() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"reelgen {importlib.metadata.version('reelgen')}"
    for name in FOLDERS:
        assert f"{name} {importlib.metadata.version(name)}" in lines


@pytest.mark.parametrize(("name", "folder"), sorted(FOLDERS.items()))
def test_each_distribution_is_ready_to_publish(name: str, folder: str) -> None:
    project = _project(folder)
    assert project["name"] == name
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / folder / "LICENSE").read_text()
    readme = (ROOT / folder / project["readme"]).read_text()
    assert len(readme.splitlines()) >= 15, "a README of its own: what it is, how to install it, an example"
    assert "./" in readme and "--find-links dist" in readme, "install from the repository or from built wheels"
    classifiers = project["classifiers"]
    assert project["keywords"] and any(c.startswith("Programming Language :: Python :: 3.") for c in classifiers)
    assert "Typing :: Typed" in classifiers and list((ROOT / folder / "src").glob("*/py.typed"))
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        assert requirement.specifier, f"{name}: {dependency} needs a version range"
        assert all(spec.operator not in ("==", "===") for spec in requirement.specifier), (
            f"{name}: {dependency} is an exact pin; pins belong in constraints.txt"
        )


def test_bailian_wan_takes_a_range_of_the_sdk_it_was_tested_with() -> None:
    dependencies = _project("providers/bailian_wan")["dependencies"]
    dashscope = next(Requirement(d) for d in dependencies if d.startswith("dashscope"))
    tested = _pins()["dashscope"]
    assert dashscope.specifier.contains(tested) and not dashscope.specifier.contains("3.0.0")


def test_the_optional_backends_are_extras_with_pins_for_development() -> None:
    extras = _project("core")["optional-dependencies"]
    assert set(extras) >= {"s3", "redis", "workers"}
    pins = _pins()
    for extra, requirements in extras.items():
        for dependency in requirements:
            requirement = Requirement(dependency)
            assert requirement.specifier, f"reelgen[{extra}]: {dependency} needs a range"
            assert requirement.name.lower() in pins, f"reelgen[{extra}]: {requirement.name} not in constraints.txt"
            assert requirement.specifier.contains(pins[requirement.name.lower()])


def test_twine_checks_the_builds_and_is_pinned() -> None:
    assert "twine" in (ROOT / "requirements-dev.txt").read_text().split()
    assert "twine" in _pins()


#: `pip install reelgen...` as if there were an index: a name, not a folder, a wheel or --find-links.
_INDEX_INSTALL = re.compile(r"pip install (?!-)(?!\S*\./)[\"']?reelgen(?:-[a-z-]+|\[)")


def _texts() -> list[Path]:
    paths = [ROOT / "README.md", *ROOT.glob("docs/**/*.md")]
    paths += [*ROOT.glob("*/README.md"), *ROOT.glob("providers/*/README.md")]
    for source in ("core/src", "providers/preview/src", "providers/bailian_wan/src", "contracts/src"):
        paths.extend((ROOT / source).rglob("*.py"))
    return paths


def test_no_doc_or_message_installs_from_an_index_that_has_no_reelgen() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _texts()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _INDEX_INSTALL.search(line)
    ]
    assert offenders == []
    assert _INDEX_INSTALL.search("pip install reelgen-bailian-wan")
    assert _INDEX_INSTALL.search("pip install 'reelgen[s3]'")
    assert not _INDEX_INSTALL.search("pip install ./core ./providers/bailian_wan")
    assert not _INDEX_INSTALL.search("pip install --find-links dist reelgen-preview")


def test_the_provider_guide_documents_every_capability_field_and_method() -> None:
    guide = (ROOT / "docs" / "writing-a-provider.md").read_text()
    assert "reelgen new-provider" in guide.split("\n## 2.")[0], "the guide starts from the command"
    rows = {match.group(1) for match in re.finditer(r"^\| `([a-z_]+)`", guide, re.MULTILINE)}
    pairs = re.finditer(r"^\| `([a-z_]+)`, `([a-z_]+)`", guide, re.MULTILINE)
    rows |= {name for match in pairs for name in match.groups()}
    missing = {field.name for field in attrs.fields(Capabilities)} - rows
    assert not missing, f"capability fields not documented: {sorted(missing)}"
    missing = {field.name for field in attrs.fields(OptionSpec)} - rows
    assert not missing, f"OptionSpec fields not documented: {sorted(missing)}"
    methods = {name for name in dir(Provider) if not name.startswith("_")} | {"account_id", "config_class"}
    documented = set(re.findall(r"^\| `([a-z_]+)(?:\(|`)", guide, re.MULTILINE))
    assert not methods - documented, f"provider members not documented: {sorted(methods - documented)}"
