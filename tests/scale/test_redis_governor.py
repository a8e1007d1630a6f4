"""The Redis governor: account limits held across processes (machines) through a real redis-server."""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from reelgen.cluster import RedisUnavailable
from reelgen.cluster.governor import redis_governor
from reelgen.config import ClusterConfig, Config
from reelgen.errors import ConfigError, GenerationTimeout
from reelgen.governor import Account, Limits, Wait, get_governor
from tests.helpers.services import free_port
from tests.scale._processes import HANG, first_line, lines, worker

ACCOUNT = Account("fake", "acct")


def deadline(seconds: float = HANG) -> float:
    return time.monotonic() + seconds


def test_the_plugin_answers_the_governor_hook_when_redis_is_set(redis_url, tmp_path):
    config = Config(cluster=ClusterConfig(redis=redis_url))
    governor = get_governor(config)
    assert "redis://127.0.0.1" in repr(governor) and governor is get_governor(config)
    # Without Redis, the built-in SQLite governor answers.
    assert "redis" not in repr(get_governor(Config()))


def test_leases_hold_across_real_processes(redis_url, tmp_path):
    go = tmp_path / "go"
    spec = {"do": "hold", "url": redis_url, "concurrency": 2, "hold": 0.15, "rounds": 3, "go": str(go)}
    processes = [worker(spec) for _ in range(4)]
    go.touch()
    spans = [span for process in processes for span in lines(process)]
    assert len(spans) == 12
    events = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans], key=lambda e: (e[0], e[1]))
    held = peak = 0
    for _, change in events:
        held += change
        peak = max(peak, held)
    assert peak == 2  # the limit, and reached (4 processes wanted 4)


async def test_a_killed_holder_keeps_its_slot_until_its_job_is_seen_to_end(redis_url):
    holder = worker({"do": "bind", "url": redis_url, "concurrency": 1, "job_id": "fake:task-9"})
    assert first_line(holder)["bound"] == "fake:task-9"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=HANG)
    governor = redis_governor(redis_url, "reelgen")
    assert await governor.in_use(ACCOUNT) == 1  # its task may still run: the slot still counts
    waits: list[Wait] = []
    with pytest.raises(GenerationTimeout, match="1/1 in use"):
        await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline(0.3), on_wait=waits.append)
    assert waits == [Wait(reason="slot", in_use=1, limit=1)]
    await governor.release_job(ACCOUNT, "fake:task-9")  # a follower saw the task end
    permit = await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline())
    await permit.release()
    assert await governor.in_use(ACCOUNT) == 0


async def test_a_killed_holder_s_slot_comes_back_when_its_lease_expires(redis_url):
    holder = worker({"do": "bind", "url": redis_url, "concurrency": 1, "job_id": "fake:task-3", "lease": 1.0})
    assert first_line(holder)["bound"] == "fake:task-3"
    bound_at = time.monotonic()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=HANG)
    governor = redis_governor(redis_url, "reelgen", lease=1.0)
    permit = await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline())
    assert time.monotonic() - bound_at >= 0.9  # only once the lease ran out, on Redis's clock
    await permit.release()


async def test_renewal_keeps_a_slot_past_its_lease(redis_url):
    governor = redis_governor(redis_url, "reelgen", lease=0.6)
    permit = await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline())
    await permit.bind("fake:task-1")
    for _ in range(4):  # 1.2 s: twice the lease, renewed as a poller would
        time.sleep(0.3)
        await permit.renew()
    assert await governor.in_use(ACCOUNT) == 1
    await governor.renew_job(ACCOUNT, "fake:task-1")  # an adopter renews by job id
    assert await governor.in_use(ACCOUNT) == 1
    await permit.release()
    await permit.release()  # idempotent
    assert await governor.in_use(ACCOUNT) == 0


async def test_accounts_and_namespaces_do_not_share_slots(redis_url):
    governor = redis_governor(redis_url, "reelgen")
    other_team = redis_governor(redis_url, "team-b")
    one = await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline())
    two = await governor.acquire(Account("fake", "other-key"), Limits(concurrency=1), deadline_at=deadline(1))
    three = await other_team.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline(1))
    for permit in (one, two, three):
        await permit.release()
    keys = redis.Redis.from_url(redis_url, decode_responses=True).keys("*")
    assert all(key.startswith(("reelgen:", "team-b:")) for key in keys)


def test_submit_windows_hold_across_processes(redis_url, tmp_path):
    go = tmp_path / "go"
    spec = {"do": "throttle", "url": redis_url, "submit_rate": 5.0, "kind": "submit", "calls": 6, "go": str(go)}
    processes = [worker(spec) for _ in range(3)]
    go.touch()
    calls = sorted((line for process in processes for line in lines(process)), key=lambda c: c["after"])
    assert len(calls) == 18
    # Any 6 tokens span at least the one-second window.
    for i in range(len(calls) - 5):
        group = calls[i : i + 6]
        assert group[-1]["after"] - min(c["before"] for c in group) >= 1.0 - 1e-3


def test_a_redis_that_is_down_is_a_clear_error_before_anything_is_paid():
    dead = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(ConfigError, match="cannot reach Redis") as raised:
        get_governor(Config(cluster=ClusterConfig(redis=dead)))
    assert isinstance(raised.value, RedisUnavailable)
    assert "hunter2" not in str(raised.value) and "REELGEN_REDIS_URL" in str(raised.value)


async def test_renewing_a_running_job_that_holds_no_lease_counts_it_again(redis_url):
    # Its creator died before binding the permit (or the lease ran out): the job still runs,
    # so it counts, even over the limit, until someone sees it end.
    governor = redis_governor(redis_url, "reelgen")
    full = await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline())
    await governor.renew_job(ACCOUNT, "fake:orphan")
    assert await governor.in_use(ACCOUNT) == 2
    await governor.renew_job(ACCOUNT, "fake:orphan")  # renewed, not counted twice
    assert await governor.in_use(ACCOUNT) == 2
    await governor.release_job(ACCOUNT, "fake:orphan")
    await full.release()
    assert await governor.in_use(ACCOUNT) == 0


async def test_a_job_whose_creator_died_before_binding_takes_over_its_permit(redis_url):
    """Killed between the permit and the bind: whoever adopts the entry's job holds that slot,
    so the account is not one slot short until the dead permit's lease runs out."""
    holder = worker({"do": "create", "url": redis_url, "concurrency": 2, "entry": "j-1"})
    assert first_line(holder)["entry"] == "j-1"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=HANG)
    governor = redis_governor(redis_url, "reelgen")
    await governor.renew_job(ACCOUNT, "fake:task-1", entry="j-1")  # the adopter's first renewal
    assert await governor.in_use(ACCOUNT) == 1
    await governor.release_job(ACCOUNT, "fake:task-1")  # seen to end: its slot is free
    assert await governor.in_use(ACCOUNT) == 0


async def test_an_entry_submitted_again_takes_over_its_dead_creators_permit(redis_url):
    """The task list proved the dead creator's create never landed: the entry's new create
    goes under its old permit, even on a full account, and no other entry gets it."""
    holder = worker({"do": "create", "url": redis_url, "concurrency": 1, "entry": "j-2"})
    assert first_line(holder)["entry"] == "j-2"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=HANG)
    governor = redis_governor(redis_url, "reelgen")
    with pytest.raises(GenerationTimeout, match="1/1 in use"):
        await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline(0.3), entry="j-3")
    permit = await governor.acquire(ACCOUNT, Limits(concurrency=1), deadline_at=deadline(), entry="j-2")
    assert await governor.in_use(ACCOUNT) == 1
    await permit.bind("fake:task-2")
    await permit.release()
    assert await governor.in_use(ACCOUNT) == 0


async def test_a_bound_permit_is_no_longer_named_by_its_entry(redis_url):
    governor = redis_governor(redis_url, "reelgen")
    permit = await governor.acquire(ACCOUNT, Limits(concurrency=2), deadline_at=deadline(), entry="j-4")
    await permit.bind("fake:task-4")
    await governor.renew_job(ACCOUNT, "fake:task-5", entry="j-4")  # another job: not this permit
    assert await governor.in_use(ACCOUNT) == 2
    await governor.release_job(ACCOUNT, "fake:task-4")
    await governor.release_job(ACCOUNT, "fake:task-5")
    assert await governor.in_use(ACCOUNT) == 0
