"""The public surface other engineers code against, and the config's validation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import reelgen_bailian_wan.emulator as emulator_package
from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig, Faults, output_size


def test_exported_names_are_the_documented_ones() -> None:
    assert set(emulator_package.__all__) == {
        "MODEL",
        "DashScopeEmulator",
        "EmulatorConfig",
        "Faults",
        "output_size",
    }
    for name in emulator_package.__all__:
        assert getattr(emulator_package, name) is not None


def test_config_defaults_follow_the_reference() -> None:
    config = EmulatorConfig()
    assert config.api_keys is None
    assert (config.queue_seconds, config.run_seconds, config.time_scale) == (1.0, None, 1.0)
    assert config.url_ttl_seconds == config.task_ttl_seconds == 86400
    assert (config.submit_rps, config.max_concurrent, config.query_qps) == (5, 5, 20)
    assert config.concurrency_policy == "queue"
    assert config.strict_parameters is False
    assert (config.min_image_side, config.max_image_side) == (240, 8000)
    assert config.max_image_bytes == 10 * 1024 * 1024
    assert config.faults == Faults()
    assert not config.faults.active


def test_the_brief_s_constructor_call_works_verbatim() -> None:
    cfg = EmulatorConfig(
        api_keys=None,
        queue_seconds=1.0,
        run_seconds=None,
        time_scale=1.0,
        url_ttl_seconds=86400,
        strict_parameters=False,
        submit_rps=5,
        max_concurrent=5,
        query_qps=20,
        concurrency_policy="queue",
        faults=Faults(
            seed=0,
            create_429=0.0,
            create_5xx=0.0,
            query_503=0.0,
            query_504=0.0,
            query_reset=0.0,
            task_failed=0.0,
            failed_code="InternalError",
            slow_seconds=0.0,
            slow_probability=0.0,
            truncate_download=0.0,
            corrupt_download=0.0,
            early_expiry=0.0,
        ),
    )
    assert cfg.evolve(time_scale=0.5).time_scale == 0.5


@pytest.mark.parametrize(
    "options",
    [
        {"queue_seconds": -1},
        {"time_scale": -0.1},
        {"submit_rps": 0},
        {"concurrency_policy": "drop"},
        {"render_mode": "fast"},
        {"api_keys": [""]},
        {"min_image_side": 500, "max_image_side": 400},
    ],
)
def test_bad_config_fails_on_construction(options: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        EmulatorConfig(**options)  # type: ignore[arg-type]


def test_api_keys_accept_any_iterable_or_a_single_key() -> None:
    assert EmulatorConfig(api_keys=["a", "b"]).api_keys == frozenset({"a", "b"})
    assert EmulatorConfig(api_keys="only").api_keys == frozenset({"only"})
    assert "only" not in repr(EmulatorConfig(api_keys="only"))


def test_faults_validate_probabilities() -> None:
    with pytest.raises(ValueError):
        Faults(query_503=1.5)
    with pytest.raises(ValueError, match="add up"):
        Faults(query_503=0.6, query_504=0.6)


def test_faults_parse_the_env_and_cli_form() -> None:
    faults = Faults.parse("create_429=0.25, query-503=0.5;seed=7,failed_code=DataInspectionFailed")
    assert faults == Faults(seed=7, create_429=0.25, query_503=0.5, failed_code="DataInspectionFailed")
    assert Faults.parse("") == Faults()
    assert Faults.parse({"task_failed": "1"}) == Faults(task_failed=1.0)
    with pytest.raises(ValueError, match="unknown fault"):
        Faults.parse("nonsense=1")
    with pytest.raises(ValueError, match="NAME=VALUE"):
        Faults.parse("create_429")


def test_documented_example_750x1000_at_720p_gives_816x1104() -> None:
    assert output_size(750, 1000, "720P") == (816, 1104)
    assert output_size(1280, 720, "720P") == (1280, 720)
    assert output_size(1920, 1080, "1080P") == (1920, 1072)


@given(
    width=st.integers(240, 8000),
    height=st.integers(240, 8000),
    tier=st.sampled_from(["720P", "1080P"]),
)
def test_output_size_invariants(width: int, height: int, tier: str) -> None:
    out_w, out_h = output_size(width, height, tier)
    target = {"720P": 1280 * 720, "1080P": 1920 * 1080}[tier]
    assert out_w % 16 == 0 and out_h % 16 == 0
    assert out_w * out_h <= target
    # Rounding down to 16 loses at most 16 px per side.
    assert (out_w + 16) * (out_h + 16) > target
    assert math.isclose(out_w / out_h, width / height, rel_tol=0.2) or min(out_w, out_h) < 160


def test_start_serves_at_once_and_stop_frees_the_port() -> None:
    # How fast it starts is measured by bench/emulator_startup.py, not asserted here.
    emulator = DashScopeEmulator(EmulatorConfig()).start()
    try:
        assert emulator.base_url == f"http://127.0.0.1:{emulator.port}/api/v1"
        assert emulator.running
        with pytest.raises(RuntimeError):
            emulator.start()
    finally:
        emulator.stop()
    assert not emulator.running
    assert "stopped" in repr(emulator)
    emulator.stop()  # idempotent


def test_context_manager_yields_a_running_emulator() -> None:
    with DashScopeEmulator() as emulator:
        assert emulator.running
        assert emulator.counters()["creates"] == 0
    assert not emulator.running
