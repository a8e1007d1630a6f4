"""pytest fixtures for the DashScope emulator (entry point `reelgen_dashscope_emulator`).

* `dashscope_emulator`: a fresh emulator per test (start-up takes milliseconds).
  Configure it with the marker ``@pytest.mark.dashscope_emulator(time_scale=0.001,
  faults=Faults(query_503=0.5))`` (any `EmulatorConfig` field), or by overriding the
  `dashscope_emulator_config` fixture.
* `dashscope_emulator_session`: one emulator for the whole session, default test
  config; call `.reset()` where a test needs a clean slate.

Rendered videos are cached for the whole process, so identical tasks across tests
render once. This module is loaded by every pytest run in the environment, so it
imports nothing heavy at module level.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..emulator.config import EmulatorConfig
    from ..emulator.server import DashScopeEmulator

__all__ = [
    "TEST_DEFAULTS",
    "dashscope_emulator",
    "dashscope_emulator_config",
    "dashscope_emulator_session",
]

# Fast by default: a 5 s 720P task spends ~1 s in the emulator instead of ~90 s.
TEST_DEFAULTS: dict[str, Any] = {"time_scale": 0.01, "queue_seconds": 0.0}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dashscope_emulator(**options): EmulatorConfig options for the dashscope_emulator fixture",
    )


@pytest.fixture
def dashscope_emulator_config(request: pytest.FixtureRequest) -> EmulatorConfig:
    """The config of `dashscope_emulator`: test defaults, then the marker's options."""
    from ..emulator.config import EmulatorConfig

    options = dict(TEST_DEFAULTS)
    for marker in reversed(list(request.node.iter_markers("dashscope_emulator"))):
        options.update(marker.kwargs)
    return EmulatorConfig(**options)


@pytest.fixture
def dashscope_emulator(dashscope_emulator_config: EmulatorConfig) -> Iterator[DashScopeEmulator]:
    """A running emulator on a free loopback port, stopped after the test."""
    from ..emulator.server import DashScopeEmulator

    with DashScopeEmulator(dashscope_emulator_config) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def dashscope_emulator_session() -> Iterator[DashScopeEmulator]:
    """One emulator (test defaults) shared by the whole session."""
    from ..emulator.config import EmulatorConfig
    from ..emulator.server import DashScopeEmulator

    with DashScopeEmulator(EmulatorConfig(**TEST_DEFAULTS)) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def reelgen_sandbox_bailian_wan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The emulator as the sandbox of `pytest --reelgen-provider bailian_wan` (reelgen-contracts)."""
    from .contract_sandbox import sandbox

    yield from sandbox(tmp_path_factory.mktemp("bailian-sandbox"))
