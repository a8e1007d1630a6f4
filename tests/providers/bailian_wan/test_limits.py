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
from tests.providers.bailian_wan.helpers import SCALE, provider_for, request


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


def _peak_at_the_provider(emulator: DashScopeEmulator) -> int:
    """Most tasks the account had at once (created and not yet ended), from the emulator's record."""
    import datetime

    def at(text: str) -> float:
        return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()

    moments = sorted(
        [(at(t["submit_time"]), 1) for t in emulator.tasks()] + [(at(t["end_time"]), -1) for t in emulator.tasks()],
        key=lambda moment: (moment[0], moment[1]),
    )
    held = peak = 0
    for _, change in moments:
        held += change
        peak = max(peak, held)
    return peak


async def _six_at_once(provider: object, config: Config, photo: Path) -> int:
    """Six different generations at once; how many different tasks they were delivered from."""
    results = await asyncio.wait_for(
        asyncio.gather(
            *(reelgen.agenerate(request(photo, seed=n), provider, config=config, use_cache=False) for n in range(6))
        ),
        120,
    )
    return len({result.task_id for result in results})


@pytest.fixture
def fresh_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    """What this process learned of accounts that refuse tasks created ahead, forgotten."""
    from reelgen import governor

    monkeypatch.setattr(governor, "_REFUSES_AHEAD", set())


@pytest.mark.dashscope_emulator(render_mode="still", concurrency_policy="queue", max_concurrent=2)
async def test_queue_ahead_creates_that_many_more_to_wait_at_a_provider_that_queues(
    dashscope_emulator: DashScopeEmulator, wide_photo: Path, tmp_path: Path, fresh_refusals: None
) -> None:
    """Issue 13: with `queue_ahead = 2` the account holds 2 running and 2 waiting tasks, so a
    freed slot starts its next task at once; nothing is refused, nothing created twice."""
    provider = provider_for(dashscope_emulator)
    config = make_config(tmp_path, concurrency=2, queue_ahead=2)
    assert await _six_at_once(provider, config, wide_photo) == 6
    counters = dashscope_emulator.counters()
    assert counters["throttled"] == 0 and counters["creates"] == counters["tasks_created"] == 6
    assert _peak_at_the_provider(dashscope_emulator) == 4


@pytest.mark.dashscope_emulator(render_mode="still", concurrency_policy="reject", max_concurrent=2)
async def test_an_account_that_refuses_a_task_created_ahead_is_not_asked_again(
    dashscope_emulator: DashScopeEmulator,
    wide_photo: Path,
    tmp_path: Path,
    fresh_refusals: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`queue_ahead` set for an account that refuses a 3rd task: the refused creates (429s,
    so nothing was made) wait for a real slot, the process stops creating ahead for the
    account and says which setting to remove; every generation is created exactly once."""
    from reelgen.governor import account_for

    provider = provider_for(dashscope_emulator)
    config = make_config(tmp_path, concurrency=2, queue_ahead=2)
    with caplog.at_level("WARNING", logger="reelgen.governor"):
        assert await _six_at_once(provider, config, wide_photo) == 6
    counters = dashscope_emulator.counters()
    assert counters["tasks_created"] == 6
    assert 1 <= counters["throttled"] <= 2  # the creates already ahead when the first was refused
    assert limits_for(provider, config).permits(account_for(provider)) == 2
    assert "remove limits.bailian_wan.queue_ahead" in caplog.text
    assert _peak_at_the_provider(dashscope_emulator) <= 2


def test_queue_ahead_is_checked_like_the_other_limits(tmp_path: Path) -> None:
    provider = create_provider({})
    with pytest.raises(ConfigError, match=r"limits\.bailian_wan\.queue_ahead must be a whole number"):
        limits_for(provider, make_config(tmp_path, queue_ahead=-1))
    assert limits_for(provider, make_config(tmp_path, queue_ahead=3)).permits() == 8
    assert limits_for(provider, make_config(tmp_path)).permits() == 5


@pytest.mark.dashscope_emulator(render_mode="still", concurrency_policy="queue", max_concurrent=2)
def test_a_batch_keeps_queue_ahead_rows_waiting_at_the_provider(
    dashscope_emulator: DashScopeEmulator, wide_photo: Path, tmp_path: Path, fresh_refusals: None
) -> None:
    """The batch lets rows past its slot wait up to the governor's permits (concurrency plus
    queue_ahead), so the provider always has the next task queued when one ends."""
    from reelgen.manifest import ManifestRow

    config = make_config(tmp_path, concurrency=2, queue_ahead=2).evolve(
        provider="bailian_wan",
        providers={"bailian_wan": {"base_url": dashscope_emulator.base_url, "time_scale": SCALE}},
    )
    rows = [ManifestRow(id=f"r{n}", request=request(wide_photo, seed=n), line=n + 1) for n in range(8)]
    outcomes = dict(reelgen.batch(rows, config=config, results=tmp_path / "out.jsonl"))
    assert all(isinstance(result, reelgen.VideoResult) for result in outcomes.values()), outcomes
    counters = dashscope_emulator.counters()
    assert counters["throttled"] == 0 and counters["creates"] == counters["tasks_created"] == 8
    assert _peak_at_the_provider(dashscope_emulator) == 4
