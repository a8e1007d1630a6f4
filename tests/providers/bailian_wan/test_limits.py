"""bailian_wan's account limits: data in its capabilities, enforced by the core's governor.

The provider keeps no limiter of its own (its old per-instance `limits.py` could not see
other processes); these tests drive the real SDK against the emulator through the core.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

import reelgen
from reelgen.config import CacheConfig, Config, JobsConfig, StorageConfig
from reelgen.errors import ConfigError
from reelgen.governor import Limits, limits_for
from reelgen_bailian_wan import create_provider
from reelgen_bailian_wan.emulator import DashScopeEmulator
from tests.providers.bailian_wan.helpers import provider_for, request


def make_config(tmp_path: Path, **limits: object) -> Config:
    return Config(
        storage=StorageConfig(url=str(tmp_path / "videos")),
        cache=CacheConfig(url="none"),
        jobs=JobsConfig(url=f"sqlite:///{tmp_path / 'jobs.db'}"),
        limits={"bailian_wan": dict(limits)} if limits else {},
        deadline=60,
    )


def test_the_provider_has_no_limiter_of_its_own() -> None:
    assert importlib.util.find_spec("reelgen_bailian_wan.limits") is None
    provider = create_provider({})
    assert not any(name in vars(provider) for name in ("_slots", "_submits", "_queries"))
    assert limits_for(provider, Config()) == Limits(concurrency=5, submit_rate=5.0, query_rate=20.0)


@pytest.mark.parametrize(
    ("old", "new"),
    [("max_concurrency", "concurrency"), ("submit_rate", "submit_rate"), ("query_rate", "query_rate")],
)
def test_the_old_provider_settings_say_where_the_limits_went(old: str, new: str) -> None:
    with pytest.raises(ConfigError, match=rf"providers\.bailian_wan\.{old} has moved.*set limits\.bailian_wan\.{new}"):
        create_provider({old: 2})


@pytest.mark.dashscope_emulator(render_mode="still", concurrency_policy="reject", max_concurrent=2)
async def test_a_lower_limit_in_config_is_what_the_account_sees(
    dashscope_emulator: DashScopeEmulator, wide_photo: Path, tmp_path: Path
) -> None:
    """An account allowed 2 tasks (the emulator answers 429 to a third): `[limits.bailian_wan]`
    concurrency = 2 keeps 6 simultaneous generations from ever asking for a third."""
    provider = provider_for(dashscope_emulator)
    config = make_config(tmp_path, concurrency=2)
    waits: list[dict[str, object]] = []

    def seen(event: reelgen.Event) -> None:
        if event.kind == "waiting":
            waits.append(dict(event.data))

    results = await asyncio.wait_for(
        asyncio.gather(
            *(
                reelgen.agenerate(request(wide_photo, seed=n), provider, config=config, use_cache=False, on_event=seen)
                for n in range(6)
            )
        ),
        120,
    )
    assert len({result.task_id for result in results}) == 6
    counters = dashscope_emulator.counters()
    assert counters["throttled"] == 0
    assert counters["creates"] == counters["tasks_created"] == 6
    assert {"reason": "slot", "in_use": 2, "limit": 2}.items() <= waits[0].items()
