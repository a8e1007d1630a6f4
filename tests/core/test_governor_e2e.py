"""Issue 9's "done when": a deadline shorter than the wait for a slot ends in about the deadline
with `GenerationTimeout` (CLI exit 4) and NO task created — real bailian_wan provider, real
dashscope SDK, the emulator's own task list as the witness.

The account's 5 slots are held by another holder of the same governor file (as another
process on the machine would hold them), so the generation can only wait.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from PIL import Image

import reelgen
from reelgen.builtins.governor import governor_for
from reelgen.config import CacheConfig, Config, JobsConfig, StorageConfig
from reelgen.errors import GenerationTimeout
from reelgen.governor import Limits, Permit, account_for
from reelgen_bailian_wan import create_provider
from reelgen_bailian_wan.emulator import DashScopeEmulator
from tests.helpers.cli import API_KEY, cli_env, run_cli

pytestmark = pytest.mark.dashscope_emulator(render_mode="still")

DEADLINE = 2.0
#: Generous: only catches a wait that ignores the deadline (a hang), never measures speed.
HANG_MARGIN = 20.0


async def hold_the_account(workdir: Path, base_url: str, monkeypatch: pytest.MonkeyPatch) -> list[Permit]:
    """Take all 5 of the account's slots in `workdir/governor.db` (beside jobs.db)."""
    monkeypatch.setenv("DASHSCOPE_API_KEY", API_KEY)
    provider = create_provider({"base_url": base_url})
    governor = governor_for(workdir / "governor.db")
    limits = Limits(concurrency=5)
    deadline_at = time.monotonic() + 30
    return [await governor.acquire(account_for(provider), limits, deadline_at=deadline_at) for _ in range(5)]


def photo(workdir: Path) -> Path:
    path = workdir / "photo.jpg"
    Image.effect_noise((480, 270), 40).convert("RGB").save(path)
    return path


async def test_the_python_api_times_out_waiting_for_a_slot_and_creates_nothing(
    dashscope_emulator: DashScopeEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = await hold_the_account(tmp_path, dashscope_emulator.base_url, monkeypatch)
    provider = create_provider({"base_url": dashscope_emulator.base_url, "time_scale": 0.01})
    config = Config(
        storage=StorageConfig(url=str(tmp_path / "videos")),
        cache=CacheConfig(url="none"),
        jobs=JobsConfig(url=f"sqlite:///{tmp_path / 'jobs.db'}"),
    )
    request = reelgen.VideoRequest(
        prompt="waves against a lighthouse", reference_image=str(photo(tmp_path)), duration=2, size="1280*720"
    )
    waits: list[dict[str, object]] = []

    def seen(event: reelgen.Event) -> None:
        if event.kind == "waiting":
            waits.append(dict(event.data))

    started = time.monotonic()
    with pytest.raises(GenerationTimeout) as caught:
        await asyncio.wait_for(
            reelgen.agenerate(request, provider, config=config, deadline=DEADLINE, on_event=seen), 120
        )
    took = time.monotonic() - started
    assert DEADLINE <= took < DEADLINE + HANG_MARGIN
    assert caught.value.job_id is None
    assert "no task was created" in str(caught.value)
    assert waits and {"reason": "slot", "in_use": 5, "limit": 5}.items() <= waits[0].items()
    assert dashscope_emulator.tasks() == []
    assert dashscope_emulator.counters()["creates"] == 0
    for permit in held:
        await permit.release()


async def test_the_cli_exits_4_in_about_the_deadline_and_creates_nothing(
    dashscope_emulator: DashScopeEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = await hold_the_account(tmp_path, dashscope_emulator.base_url, monkeypatch)
    photo(tmp_path)
    env = cli_env(dashscope_emulator, tmp_path)
    args = ("generate", "photo.jpg", "--prompt", "waves against a lighthouse", "--duration", "2")
    started = time.monotonic()
    done = await asyncio.to_thread(run_cli, env, tmp_path, *args, "--size", "1280*720", "--deadline", str(DEADLINE))
    took = time.monotonic() - started
    assert done.returncode == 4, done.stderr
    assert "no task was created" in done.stderr
    assert DEADLINE <= took < DEADLINE + HANG_MARGIN + 10  # + the child's start-up
    assert dashscope_emulator.tasks() == []
    assert dashscope_emulator.counters()["creates"] == 0
    for permit in held:
        await permit.release()
