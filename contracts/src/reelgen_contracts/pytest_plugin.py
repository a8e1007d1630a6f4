"""The pytest plugin (entry point `pytest11`): `pytest --reelgen-provider NAME`.

```
pytest --reelgen-provider preview                    # the whole suite against an installed provider
pytest --reelgen-provider bailian_wan                # billed: runs only against its loopback sandbox
pytest --reelgen-provider NAME --reelgen-thorough    # many more Hypothesis examples, bigger requests
pytest --reelgen-provider NAME --reelgen-config region=cn-beijing --reelgen-allow-billing
```

The provider is built by its registered factory from `[providers.NAME]` of reelgen.toml
(and `REELGEN_PROVIDERS__NAME__KEY` variables, and `--reelgen-config KEY=VALUE`). If a
fixture named `reelgen_sandbox_NAME` exists (a provider's own pytest plugin may define
one), the suite runs against that sandbox. A provider whose capabilities say it bills is
refused unless its endpoint is a loopback sandbox or `--reelgen-allow-billing` is given;
while the suite runs, connections off the machine are refused as well.

Without `--reelgen-provider` the plugin only adds options, a marker and the
`reelgen_image_server` fixture, for `ProviderContract` subclasses in your own tests.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_report_header",
    "pytest_terminal_summary",
    "reelgen_image_server",
]

_SUITE_MODULE = Path(__file__).with_name("_provider_suite.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reelgen", "reelgen provider contract suite (reelgen-contracts)")
    group.addoption(
        "--reelgen-provider",
        action="append",
        default=[],
        metavar="NAME",
        dest="reelgen_provider",
        help="run the contract suite against this installed provider (repeat for several)",
    )
    group.addoption(
        "--reelgen-allow-billing",
        action="store_true",
        default=False,
        dest="reelgen_allow_billing",
        help="allow running against a provider that bills per job when its endpoint is not a loopback sandbox",
    )
    group.addoption(
        "--reelgen-thorough",
        action="store_true",
        default=False,
        dest="reelgen_thorough",
        help="many more Hypothesis examples (randomized, not derandomized), bigger and longer videos",
    )
    group.addoption(
        "--reelgen-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="reelgen_config",
        help="set one provider configuration value for the run (VALUE is parsed as TOML, else taken as text)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "reelgen_override(reason): a provider's replacement of a standard reelgen contract test"
    )
    names = config.getoption("reelgen_provider", default=[])
    if not names:
        return
    from reelgen.plugins import provider_entries

    installed = provider_entries()
    missing = [name for name in names if name not in installed]
    if missing:
        known = ", ".join(sorted(installed)) or "none"
        raise pytest.UsageError(
            f"--reelgen-provider: {', '.join(missing)} not installed (installed: {known}); "
            "`reelgen providers` lists plugins that failed to load"
        )
    suite = str(_SUITE_MODULE)
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        config.args.append(suite)  # explicit paths: run them and the suite
    else:
        config.args[:] = [suite]  # `pytest --reelgen-provider NAME` alone runs just the suite


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "reelgen_provider_name" in metafunc.fixturenames:
        names = metafunc.config.getoption("reelgen_provider", default=[])
        metafunc.parametrize("reelgen_provider_name", names, ids=names, scope="session")


def pytest_report_header(config: pytest.Config) -> list[str]:
    names = config.getoption("reelgen_provider", default=[])
    if not names:
        return []
    billing = "allowed" if config.getoption("reelgen_allow_billing") else "refused unless loopback"
    mode = "thorough" if config.getoption("reelgen_thorough") else "default"
    return [f"reelgen-contracts: providers={', '.join(names)}; run={mode}; billing={billing}"]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    overridden: dict[str, str] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            reason = getattr(report, "reelgen_override", None)
            if reason:
                overridden[report.nodeid] = reason
    if overridden:
        terminalreporter.section("reelgen contract tests overridden by the provider")
        for nodeid, reason in sorted(overridden.items()):
            terminalreporter.line(f"{nodeid}: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    marker = item.get_closest_marker("reelgen_override")
    if marker is not None and call.when == "call":
        report.reelgen_override = marker.kwargs.get("reason", "")  # type: ignore[attr-defined]
    return report


@pytest.fixture(scope="session")
def reelgen_image_server() -> Iterator[Any]:
    """A loopback HTTP server for reference images, for providers that fetch http:// URLs."""
    from .images import ImageServer

    server = ImageServer()
    try:
        yield server
    finally:
        server.close()
