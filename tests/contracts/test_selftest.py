"""The contract suite catches every broken provider, each for its own defect.

The suite runs (in a subprocess, since its tests are meant to fail) against each provider
of `broken.py`, selecting the tests that defect must fail. Each selected test must fail,
and its report must name the defect, so a suite that fails for an unrelated reason does
not count. `test_fakeremote.py` is the control: the same provider without a defect passes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import attrs
import pytest

from tests.contracts.broken import BROKEN
from tests.contracts.known_issues import MAY_MEET_FIRST

ROOT = Path(__file__).resolve().parents[2]


@attrs.frozen
class Outcome:
    name: str
    state: str  # passed, failed, error, skipped
    text: str


def run_pytest(
    args: list[str], tmp_path: Path, *, timeout: float = 600
) -> tuple[subprocess.CompletedProcess[str], list[Outcome]]:
    """Run pytest in a subprocess from the repository root; return the process and each test's outcome."""
    report = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests" / "contracts")])}
    env.pop("PYTEST_XDIST_WORKER", None)
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    outcomes = []
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            state, text = "passed", ""
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    state = {"failure": "failed"}.get(child.tag, child.tag)
                    text = (child.get("message") or "") + "\n" + (child.text or "")
            outcomes.append(Outcome(name, state, text))
    return process, outcomes


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Outcome]]:
    """One subprocess for all broken providers: each class runs the tests its defect must fail."""
    selection = " or ".join(f"(Test_{name} and ({defect.tests}))" for name, defect in BROKEN.items())
    process, outcomes = run_pytest(
        ["tests/contracts/broken_suites.py", "-k", selection], tmp_path_factory.mktemp("broken")
    )
    by_class: dict[str, list[Outcome]] = {name: [] for name in BROKEN}
    for outcome in outcomes:
        for name in BROKEN:
            if f"Test_{name}::" in outcome.name or outcome.name.split("::")[0].endswith(f".Test_{name}"):
                by_class[name].append(outcome)
    assert process.returncode == 1, f"expected failures (exit 1), got {process.returncode}:\n{process.stdout[-3000:]}"
    return by_class


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_the_suite_fails_each_broken_provider_for_its_defect(broken_run: dict[str, list[Outcome]], name: str) -> None:
    defect = BROKEN[name]
    outcomes = broken_run[name]
    assert outcomes, f"no suite test ran for {name} (selection: {defect.tests})"
    not_failed = [o.name for o in outcomes if o.state != "failed"]
    assert not not_failed, f"{name}: these suite tests did not fail: {not_failed}"
    reports = "\n".join(o.text for o in outcomes)
    if name in MAY_MEET_FIRST and not re.search(defect.because, reports):
        pytest.xfail(f"the suite failed {name}, but met a known bug first: {MAY_MEET_FIRST[name]}")
    assert re.search(defect.because, reports), (
        f"{name}: the suite failed, but not because of the defect (no {defect.because!r} in the report):\n"
        + reports[-2000:]
    )
