"""`pytest --reelgen-provider NAME` passes for both of our providers, and refuses a billed endpoint.

Each run is a real `pytest` subprocess from the repository root, exactly as a provider
author would type it. `known_issues.KNOWN_FAILURES` lists suite tests that fail today
because of a bug outside the contract kit, with the reason; the run must pass everything
else, and a strict entry that starts passing fails here so it gets removed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contracts.known_issues import KNOWN_FAILURES
from tests.contracts.test_selftest import Outcome, run_pytest


def _judge(provider: str, outcomes: list[Outcome], output: str) -> None:
    assert outcomes, f"no tests ran:\n{output[-3000:]}"
    known = KNOWN_FAILURES.get(provider, {})
    unexpected = [o for o in outcomes if o.state in ("failed", "error") and not any(k in o.name for k in known)]
    assert not unexpected, "the suite failed for {}:\n{}".format(
        provider, "\n\n".join(f"{o.name}\n{o.text[-1500:]}" for o in unexpected)
    )
    for fragment, issue in known.items():
        matching = [o for o in outcomes if fragment in o.name]
        assert matching, f"known failure {fragment!r} did not run"
        if issue.strict:
            assert any(o.state == "failed" for o in matching), (
                f"{fragment} passes now: remove it from KNOWN_FAILURES[{provider!r}] ({issue.reason})"
            )


@pytest.mark.parametrize("provider", ["preview", "bailian_wan"])
def test_the_suite_passes_our_providers(provider: str, tmp_path: Path) -> None:
    process, outcomes = run_pytest(["--reelgen-provider", provider], tmp_path)
    _judge(provider, outcomes, process.stdout + process.stderr)
    passed = sum(o.state == "passed" for o in outcomes)
    assert passed >= 15, f"only {passed} suite tests passed for {provider}"


def test_a_billed_provider_without_a_sandbox_is_refused(tmp_path: Path) -> None:
    # The emulator's own pytest plugin is disabled, so no sandbox fixture can be found.
    process, outcomes = run_pytest(
        ["--reelgen-provider", "bailian_wan", "-p", "no:reelgen_dashscope_emulator"], tmp_path
    )
    output = process.stdout + process.stderr
    assert process.returncode == 2, output[-3000:]  # interrupted: the first test's setup refused
    assert "Interrupted: reelgen-contracts: refusing to run the suite against 'bailian_wan'" in output
    assert len(outcomes) == 1, "the run went on after refusing"
    assert "--reelgen-allow-billing" in output
    assert not [o for o in outcomes if o.state == "passed"], "tests ran against a billed endpoint"


def test_an_unknown_provider_is_a_usage_error(tmp_path: Path) -> None:
    process, _ = run_pytest(["--reelgen-provider", "no_such_provider"], tmp_path)
    output = process.stdout + process.stderr
    assert process.returncode == 4, output[-2000:]
    assert "no_such_provider not installed" in output
