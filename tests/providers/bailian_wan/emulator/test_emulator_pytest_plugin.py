"""The pytest11 plugin: fixtures, the marker, and a light import."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig
from reelgen_bailian_wan.testing.pytest_plugin import TEST_DEFAULTS

_seen: list[DashScopeEmulator] = []


def test_default_fixture_is_fast_and_running(dashscope_emulator: DashScopeEmulator) -> None:
    assert dashscope_emulator.running
    assert dashscope_emulator.config == EmulatorConfig(**TEST_DEFAULTS)


@pytest.mark.dashscope_emulator(time_scale=0.5, strict_parameters=True)
def test_marker_options_override_the_defaults(dashscope_emulator: DashScopeEmulator) -> None:
    assert dashscope_emulator.config.time_scale == 0.5
    assert dashscope_emulator.config.strict_parameters
    assert dashscope_emulator.config.queue_seconds == TEST_DEFAULTS["queue_seconds"]


@pytest.mark.parametrize("run", [1, 2])
def test_session_fixture_is_shared(dashscope_emulator_session: DashScopeEmulator, run: int) -> None:
    _seen.append(dashscope_emulator_session)
    assert dashscope_emulator_session.running
    assert all(emulator is dashscope_emulator_session for emulator in _seen)


def test_plugin_import_is_light() -> None:
    code = (
        "import sys, reelgen_bailian_wan.testing.pytest_plugin;"
        "print(sorted(m for m in ('dashscope', 'av', 'PIL', 'numpy', 'requests', 'aiohttp') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_config_fixture_can_be_read(dashscope_emulator_config: Any) -> None:
    assert isinstance(dashscope_emulator_config, EmulatorConfig)
