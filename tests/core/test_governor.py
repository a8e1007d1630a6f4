"""The account governor: limits as data, leases shared by real processes, bounded waits, rate windows."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import reelgen
from reelgen.builtins.governor import LeaseGovernor, governor_for, governor_path, rate_item
from reelgen.capabilities import Capabilities
from reelgen.config import Config, JobsConfig
from reelgen.errors import ConfigError, GenerationTimeout
from reelgen.governor import Account, Limits, Wait, account_for, get_governor, limits_for
from reelgen.plugins import get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = Account("fake", "acct")
#: Generous: only catches a hang (never a speed assertion).
HANG = 60.0


def deadline(seconds: float = HANG) -> float:
    return time.monotonic() + seconds


def worker(spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.governor_worker", json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def lines(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    out, _ = process.communicate(timeout=HANG)
    assert process.returncode == 0
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def first_line(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    return json.loads(process.stdout.readline())  # type: ignore[no-any-return]


class Shaped:
    """A provider-shaped object: the governor reads only name, capabilities and account_id."""

    def __init__(self, capabilities: Capabilities, account_id: str = "") -> None:
        self.name = "shaped"
        self.capabilities = capabilities
        if account_id:
            self.account_id = account_id


# -- limits as data ------------------------------------------------------------------------


def test_limits_come_from_capabilities_and_config_overrides_them() -> None:
    provider = Shaped(Capabilities(model="m", max_concurrency=5, max_submit_rate=5.0, max_query_rate=20.0))
    assert limits_for(provider, Config()) == Limits(concurrency=5, submit_rate=5.0, query_rate=20.0)  # type: ignore[arg-type]
    config = Config(limits={"shaped": {"concurrency": 2, "query_rate": "none"}})
    assert limits_for(provider, config) == Limits(concurrency=2, submit_rate=5.0, query_rate=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"concurency": 2}, "unknown setting(s) limits.shaped.concurency"),
        ({"concurrency": 0}, "limits.shaped.concurrency must be a whole number greater than 0"),
        ({"concurrency": 2.5}, "limits.shaped.concurrency must be a whole number"),
        ({"submit_rate": -1}, "limits.shaped.submit_rate must be a finite number greater than 0"),
        ({"query_rate": float("nan")}, "limits.shaped.query_rate"),
        ({"query_rate": True}, "limits.shaped.query_rate"),
    ],
)
def test_bad_limits_in_config_name_the_key(section: dict[str, Any], message: str) -> None:
    provider = Shaped(Capabilities(model="m"))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        limits_for(provider, Config(limits={"shaped": section}))  # type: ignore[arg-type]


def test_limits_section_loads_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "reelgen.toml"
    path.write_text("[limits.bailian_wan]\nconcurrency = 3\nsubmit_rate = 2.5\n", encoding="utf-8")
    config = reelgen.load_config(path, environ={})
    assert config.limits == {"bailian_wan": {"concurrency": 3, "submit_rate": 2.5}}


def test_capabilities_refuse_defaults_the_provider_would_refuse() -> None:
    with pytest.raises(ValueError, match=r"default_duration 5\.0 is not an allowed duration"):
        Capabilities(model="m", durations=(2.0, 4.0), default_duration=5.0)
    with pytest.raises(ValueError, match="whole seconds"):
        Capabilities(model="m", duration_range=(1, 10), integer_duration=True, default_duration=2.5)
    with pytest.raises(ValueError, match="default_fps"):
        Capabilities(model="m", native_fps=(24.0,), default_fps=30.0)
    with pytest.raises(ValueError, match="default_size '1280\\*720' is not one of sizes"):
        Capabilities(model="m", sizes=("640*480",), default_size="1280*720")
    with pytest.raises(ValueError, match="multiples of 16"):
        Capabilities(model="m", size_multiple_of=16, default_size="1000*719")
    with pytest.raises(ValueError, match="max_concurrency"):
        Capabilities(model="m", max_concurrency=0)
    ok = Capabilities(model="m", durations=(2.0, 4.0), default_duration=4.0, default_fps=12, default_size="64*64")
    assert ok.default_duration == 4.0


def test_bailian_declares_its_account_limits_and_defaults() -> None:
    from reelgen_bailian_wan import create_provider
    from reelgen_bailian_wan.capabilities import CAPABILITIES

    provider = create_provider({})
    assert limits_for(provider, Config()) == Limits(concurrency=5, submit_rate=5.0, query_rate=20.0)
    assert (CAPABILITIES.default_duration, CAPABILITIES.default_fps, CAPABILITIES.default_size) == (
        5.0,
        30.0,
        "1280*720",
    )


def test_an_account_is_the_provider_and_a_digest_of_the_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    from reelgen_bailian_wan import create_provider

    key = "sk-0123456789abcdef0123456789abcdef"
    monkeypatch.setenv("DASHSCOPE_API_KEY", key)
    first = create_provider({"base_url": "http://127.0.0.1:1/api/v1"})
    account = account_for(first)
    assert account.provider == "bailian_wan" and len(account.id) == 16
    assert key not in account.id and key[3:19] not in account.id
    assert account_for(create_provider({"base_url": "http://127.0.0.1:1/api/v1"})) == account
    monkeypatch.setenv("DASHSCOPE_API_KEY", key[:-1] + "0")
    assert account_for(create_provider({"base_url": "http://127.0.0.1:1/api/v1"})) != account
    assert account_for(create_provider({"base_url": "http://127.0.0.1:2/api/v1"})) != account
    # Computed once: the key the provider saw first names its account for its life.
    monkeypatch.setenv("DASHSCOPE_API_KEY", key)
    assert account_for(first) == account
    assert account_for(Shaped(Capabilities(model="m"))) == Account("shaped", "")  # type: ignore[arg-type]


def test_rate_items_never_exceed_the_rate() -> None:
    for rate, (amount, seconds) in {5.0: (5, 1), 20.0: (20, 1), 2.5: (5, 2), 0.3: (3, 10), 0.01: (1, 100)}.items():
        item = rate_item(rate)
        assert (item.amount, item.get_expiry()) == (amount, seconds)
        assert item.amount / item.get_expiry() <= rate + 1e-9


# -- where the state lives -----------------------------------------------------------------


def test_the_built_in_governor_lives_beside_the_job_journal(tmp_path: Path) -> None:
    config = Config(jobs=JobsConfig(url=f"sqlite:///{tmp_path / 'state' / 'jobs.db'}"))
    governor = get_governor(config)
    assert isinstance(governor, LeaseGovernor)
    assert governor_path(config) == tmp_path / "state" / "governor.db"
    assert get_governor(config) is governor  # one per location per process
    assert governor_path(Config(jobs=JobsConfig(url=" Off "))) is None
    memory = get_governor(Config(jobs=JobsConfig(url="none")))
    assert memory.leases.target.startswith("file:")  # type: ignore[attr-defined]


def test_a_plugin_answering_first_replaces_the_built_in(tmp_path: Path) -> None:
    mine = governor_for(tmp_path / "elsewhere.db")

    class Plugin:
        @reelgen.hookimpl
        def reelgen_governor(self, config: Config) -> LeaseGovernor:
            return mine

    pm = get_plugin_manager()
    plugin = Plugin()
    pm.register(plugin, name="test-governor")
    try:
        assert get_governor(Config(jobs=JobsConfig(url=f"sqlite:///{tmp_path / 'jobs.db'}"))) is mine
    finally:
        pm.unregister(plugin)


# -- permits in one process ----------------------------------------------------------------


async def test_no_limit_means_no_wait_and_a_no_op_permit(tmp_path: Path) -> None:
    governor = governor_for(tmp_path / "g.db")
    permits = [await governor.acquire(ACCOUNT, Limits(), deadline_at=deadline(0.001)) for _ in range(50)]
    assert await governor.in_use(ACCOUNT) == 0
    for permit in permits:
        await permit.bind("fake:t")
        await permit.renew()
        await permit.release()
    for _ in range(50):
        await governor.throttle(ACCOUNT, Limits(), "submit", deadline_at=deadline(0.001))


async def test_a_wait_for_a_slot_ends_at_the_deadline_with_no_permit_leaked(tmp_path: Path) -> None:
    governor = governor_for(tmp_path / "g.db")
    limits = Limits(concurrency=2)
    held = [await governor.acquire(ACCOUNT, limits, deadline_at=deadline()) for _ in range(2)]
    waits: list[Wait] = []
    started = time.monotonic()
    with pytest.raises(GenerationTimeout, match="no task was created") as caught:
        await governor.acquire(ACCOUNT, limits, deadline_at=started + 0.3, on_wait=waits.append)
    assert time.monotonic() - started >= 0.3
    assert caught.value.job_id is None
    assert "2/2 in use" in str(caught.value)
    assert waits == [Wait(reason="slot", in_use=2, limit=2)]
    assert waits[0].describe() == "waiting for a slot: 2/2 in use"
    assert await governor.in_use(ACCOUNT) == 2
    for permit in held:
        await permit.release()
        await permit.release()  # idempotent
    assert await governor.in_use(ACCOUNT) == 0


async def test_a_cancelled_waiter_takes_no_slot(tmp_path: Path) -> None:
    governor = governor_for(tmp_path / "g.db")
    limits = Limits(concurrency=1)
    first = await governor.acquire(ACCOUNT, limits, deadline_at=deadline())
    waiting = asyncio.ensure_future(governor.acquire(ACCOUNT, limits, deadline_at=deadline()))
    await asyncio.sleep(0.2)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await first.release()
    assert await governor.in_use(ACCOUNT) == 0
    again = await governor.acquire(ACCOUNT, limits, deadline_at=deadline())
    assert await governor.in_use(ACCOUNT) == 1
    await again.release()


async def test_accounts_do_not_share_slots(tmp_path: Path) -> None:
    governor = governor_for(tmp_path / "g.db")
    limits = Limits(concurrency=1)
    one = await governor.acquire(ACCOUNT, limits, deadline_at=deadline())
    other = await governor.acquire(Account("fake", "other-key"), limits, deadline_at=deadline(5))
    assert await governor.in_use(ACCOUNT) == 1
    await one.release()
    await other.release()


async def test_an_expired_lease_is_reclaimed_not_before_it_expires(tmp_path: Path) -> None:
    governor = governor_for(tmp_path / "g.db", lease=0.5)
    limits = Limits(concurrency=1)
    abandoned = await governor.acquire(ACCOUNT, limits, deadline_at=deadline())
    await abandoned.bind("fake:task-1")
    started = time.monotonic()
    permit = await governor.acquire(ACCOUNT, limits, deadline_at=deadline())
    assert time.monotonic() - started >= 0.4  # the lease ran out first (lower bound only)
    await permit.release()


async def test_renewal_keeps_a_permit_alive(tmp_path: Path) -> None:
    governor = governor_for(tmp_path / "g.db", lease=0.6)
    limits = Limits(concurrency=1)
    permit = await governor.acquire(ACCOUNT, limits, deadline_at=deadline())
    await permit.bind("fake:task-1")
    for _ in range(6):  # 1.2 s in all, twice the lease
        await asyncio.sleep(0.2)
        await (permit.renew() if _ % 2 else governor.renew_job(ACCOUNT, "fake:task-1"))
        assert await governor.in_use(ACCOUNT) == 1
    await governor.release_job(ACCOUNT, "fake:task-1")
    assert await governor.in_use(ACCOUNT) == 0


async def test_a_job_adopted_without_a_bound_permit_still_counts(tmp_path: Path) -> None:
    """Its creator died between the create and the bind: the adopter's first renewal binds one."""
    governor = governor_for(tmp_path / "g.db")
    limits = Limits(concurrency=2)
    await governor.acquire(ACCOUNT, limits, deadline_at=deadline())  # never bound: the creator died
    await governor.renew_job(ACCOUNT, "fake:task-5")  # the adopter polls the job it found
    assert await governor.in_use(ACCOUNT) == 2  # both count: the unbound one until its lease expires
    with pytest.raises(GenerationTimeout):
        await governor.acquire(ACCOUNT, limits, deadline_at=deadline(0.1))
    await governor.renew_job(ACCOUNT, "fake:task-5")
    assert await governor.in_use(ACCOUNT) == 2  # renewed, not added again
    await governor.release_job(ACCOUNT, "fake:task-5")
    assert await governor.in_use(ACCOUNT) == 1


def test_the_process_local_governor_serves_several_event_loops(tmp_path: Path) -> None:
    governor = get_governor(Config(jobs=JobsConfig(url="none")))
    limits = Limits(concurrency=1)
    account = Account("fake", f"loops-{tmp_path.name}")
    inside, overlaps, done = [0], [0], []
    lock = threading.Lock()

    async def use() -> None:
        for _ in range(5):
            # Rate windows and leases at once, from several threads (each store waits its turn).
            token = await governor.throttle(account, Limits(query_rate=1000.0), "query", deadline_at=deadline())
            permit = await governor.acquire(account, limits, deadline_at=deadline())
            await token.done()
            with lock:
                inside[0] += 1
                overlaps[0] += inside[0] > 1
            await asyncio.sleep(0.01)
            with lock:
                inside[0] -= 1
            await permit.release()
        done.append(True)

    threads = [threading.Thread(target=asyncio.run, args=(use(),)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=HANG)
    assert done == [True, True, True] and overlaps == [0]


# -- permits across processes ---------------------------------------------------------------


def test_leases_hold_across_real_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "governor.db")
    spec = {"do": "hold", "path": path, "concurrency": 2, "hold": 0.15, "rounds": 3}
    processes = [worker(spec) for _ in range(4)]
    spans = [span for process in processes for span in lines(process)]
    assert len(spans) == 12
    # At no instant were more than 2 permits held (each span lies inside its permit's life).
    events = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans], key=lambda e: (e[0], e[1]))
    held = peak = 0
    for _, change in events:
        held += change
        peak = max(peak, held)
    assert peak == 2  # the limit, reached (4 processes wanted 4)


async def test_release_job_by_another_process_frees_the_permit(tmp_path: Path) -> None:
    path = tmp_path / "governor.db"
    holder = worker({"do": "bind", "path": str(path), "concurrency": 1, "job_id": "fake:task-7", "exit": True})
    assert lines(holder) == [{"bound": "fake:task-7", "pid": holder.pid}]
    governor = governor_for(path)  # the default lease: only release_job can free it now
    assert await governor.in_use(ACCOUNT) == 1
    with pytest.raises(GenerationTimeout):
        await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline(0.2))
    other = worker({"do": "release_job", "path": str(path), "job_id": "fake:task-7"})
    assert lines(other) == [{"in_use": 0}]
    permit = await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline())
    await permit.release()


async def test_a_killed_holder_keeps_its_permit_until_its_job_is_seen_to_end(tmp_path: Path) -> None:
    path = tmp_path / "governor.db"
    holder = worker({"do": "bind", "path": str(path), "concurrency": 1, "job_id": "fake:task-9"})
    assert first_line(holder)["bound"] == "fake:task-9"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=HANG)
    governor = governor_for(path)
    # Not silently lost: the dead holder's slot still counts, so nobody over-subscribes.
    assert await governor.in_use(ACCOUNT) == 1
    with pytest.raises(GenerationTimeout, match="1/1 in use"):
        await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline(0.3))
    await governor.release_job(ACCOUNT, "fake:task-9")  # someone saw the task end
    permit = await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline())
    await permit.release()


async def test_a_killed_holder_s_permit_comes_back_when_its_lease_expires(tmp_path: Path) -> None:
    path = tmp_path / "governor.db"
    holder = worker({"do": "bind", "path": str(path), "concurrency": 1, "job_id": "fake:task-3", "lease": 1.0})
    assert first_line(holder)["bound"] == "fake:task-3"
    bound_at = time.monotonic()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=HANG)
    governor = governor_for(path, lease=1.0)
    permit = await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline())
    assert time.monotonic() - bound_at >= 0.9  # only once the lease ran out
    await permit.release()


async def test_a_job_whose_creator_died_before_binding_takes_over_its_permit(tmp_path: Path) -> None:
    """Killed between the permit and the bind: whoever adopts the entry's job holds that slot,
    so the account is not one slot short until the dead permit's lease runs out."""
    path = tmp_path / "governor.db"
    holder = worker({"do": "create", "path": str(path), "concurrency": 2, "entry": "j-1"})
    assert first_line(holder)["entry"] == "j-1"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=HANG)
    governor = governor_for(path)
    await governor.renew_job(ACCOUNT, "fake:task-1", entry="j-1")  # the adopter's first renewal
    assert await governor.in_use(ACCOUNT) == 1
    await governor.release_job(ACCOUNT, "fake:task-1")  # seen to end: its slot is free
    assert await governor.in_use(ACCOUNT) == 0


async def test_an_entry_submitted_again_takes_over_its_dead_creators_permit(tmp_path: Path) -> None:
    """The task list proved the dead creator's create never landed: the entry's new create
    goes under its old permit, even on a full account, and no other entry gets it."""
    path = tmp_path / "governor.db"
    holder = worker({"do": "create", "path": str(path), "concurrency": 1, "entry": "j-2"})
    assert first_line(holder)["entry"] == "j-2"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=HANG)
    governor = governor_for(path)
    with pytest.raises(GenerationTimeout, match="1/1 in use"):
        await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline(0.3), entry="j-3")
    permit = await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline(), entry="j-2")
    assert await governor.in_use(ACCOUNT) == 1
    await permit.bind("fake:task-2")
    await permit.release()
    assert await governor.in_use(ACCOUNT) == 0


async def test_a_bound_permit_is_no_longer_named_by_its_entry(tmp_path: Path) -> None:
    governor = governor_for(tmp_path / "g.db")
    permit = await governor.acquire(ACCOUNT, Limits(concurrency=2), deadline_at=deadline(), entry="j-4")
    await permit.bind("fake:task-4")
    await governor.renew_job(ACCOUNT, "fake:task-5", entry="j-4")  # another job: not this permit
    assert await governor.in_use(ACCOUNT) == 2
    await governor.release_job(ACCOUNT, "fake:task-4")
    await governor.release_job(ACCOUNT, "fake:task-5")
    assert await governor.in_use(ACCOUNT) == 0


# -- rate windows -----------------------------------------------------------------------------


def test_submit_windows_hold_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "governor.db")
    spec = {"do": "throttle", "path": path, "submit_rate": 5.0, "kind": "submit", "calls": 6}
    processes = [worker(spec) for _ in range(3)]
    calls = sorted((line for process in processes for line in lines(process)), key=lambda c: c["after"])
    assert len(calls) == 18
    # Each token was taken between `before` and `after`. Any 6 tokens span at least the
    # one-second window, so for any 6 calls (in order of `after`) the last `after` is at
    # least a second past the earliest `before` among them.
    for i in range(len(calls) - 5):
        group = calls[i : i + 6]
        assert group[-1]["after"] - min(c["before"] for c in group) >= 1.0 - 1e-3
    # 18 tokens at 5 per second: at least 3 full windows from the first to the last.
    assert calls[-1]["after"] - min(c["before"] for c in calls) >= 3.0 - 1e-3


async def test_a_rate_wait_is_bounded_by_the_deadline_and_reported(tmp_path: Path) -> None:
    governor = governor_for(tmp_path / "g.db")
    limits = Limits(submit_rate=2.0, query_rate=1.0)
    for _ in range(2):
        await governor.throttle(ACCOUNT, limits, "submit", deadline_at=deadline())
    waits: list[Wait] = []
    started = time.monotonic()
    with pytest.raises(GenerationTimeout, match=r"submit token.*no task was created"):
        await governor.throttle(ACCOUNT, limits, "submit", deadline_at=started + 0.2, on_wait=waits.append)
    assert time.monotonic() - started >= 0.2
    assert waits == [Wait(reason="submit_rate", in_use=2, limit=2)]
    # Queries have their own window.
    await governor.throttle(ACCOUNT, limits, "query", deadline_at=deadline(0.05))
    with pytest.raises(GenerationTimeout, match="query token"):
        await governor.throttle(ACCOUNT, limits, "query", deadline_at=deadline(0.05))


@pytest.mark.parametrize("storage", ["ours", "limits-memory"])
async def test_a_call_counts_in_the_window_from_its_end(tmp_path: Path, storage: str) -> None:
    """The service counts arrivals, which can be as late as the call's end: 5 slow calls
    that started together hold the window until a second after they *ended*."""
    governor = governor_for(tmp_path / "g.db")
    if storage == "limits-memory":  # a storage without restamp_entry: the end gets its own entry
        from limits.storage import MemoryStorage

        from reelgen.builtins.governor import RateWindows

        governor.windows = RateWindows(MemoryStorage())
    limits = Limits(query_rate=5.0)
    tokens = [await governor.throttle(ACCOUNT, limits, "query", deadline_at=deadline()) for _ in range(5)]
    await asyncio.sleep(0.5)  # the calls take half a window
    ended = time.monotonic()  # before the first end is recorded: a lower bound for every end
    for token in tokens:
        await token.done()
        await token.done()  # idempotent
    await governor.throttle(ACCOUNT, limits, "query", deadline_at=deadline())
    assert time.monotonic() - ended >= 0.95  # a window after the ends, not after the starts


def test_the_sqlite_storage_answers_like_limits_own_memory_storage(tmp_path: Path) -> None:
    from limits import RateLimitItemPerSecond
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter

    from reelgen.builtins._sqlite_window import SqliteWindowStorage

    def script(storage: Any) -> list[Any]:
        item = RateLimitItemPerSecond(3, 10)
        moving, fixed = MovingWindowRateLimiter(storage), FixedWindowRateLimiter(storage)
        seen: list[Any] = [storage.check()]
        seen += [moving.hit(item, "a") for _ in range(4)]
        seen += [moving.hit(item, "b"), moving.test(item, "a"), moving.hit(item, "a", cost=4)]
        seen.append(moving.get_window_stats(item, "a")[1])
        seen += [fixed.hit(item, "c") for _ in range(4)]
        seen.append(storage.get(item.key_for("c")))
        seen.append(storage.get_expiry(item.key_for("c")) > time.time() + 5)
        storage.clear(item.key_for("a"))
        seen += [moving.hit(item, "a"), moving.get_window_stats(item, "a")[1]]
        storage.reset()
        seen += [storage.get(item.key_for("c")), moving.get_window_stats(item, "b")[1]]
        return seen

    ours = SqliteWindowStorage(f"reelgen+sqlite://{tmp_path / 'w.db'}")
    assert script(ours) == script(MemoryStorage())
    ours.close()
