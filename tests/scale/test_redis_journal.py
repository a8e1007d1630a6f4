"""The Redis job journal: single-flight and adoption across processes, every machine's jobs listed."""

from __future__ import annotations

import time

import attrs
import pytest
import redis

from reelgen.cluster.journal import redis_journal
from reelgen.config import ClusterConfig, Config, JobsConfig
from reelgen.journal import JournalEntry, JournalError, Owner, get_journal, new_entry_id
from tests.helpers.services import free_port
from tests.scale._processes import lines, worker


def _entry(key: str = "k" * 64, **changes: object) -> JournalEntry:
    fields: dict[str, object] = {
        "id": new_entry_id(),
        "provider": "fake",
        "model": "m",
        "key": key,
        "state": "submitting",
        "shared": True,
        "submitted_at": time.time(),
        "owner": Owner.current(),
        "heartbeat": time.time(),
        "request": {"prompt": "a lighthouse"},
    }
    fields.update(changes)
    return JournalEntry(**fields)  # type: ignore[arg-type]


def test_the_plugin_answers_the_journal_hook_when_redis_is_set(redis_url):
    journal = get_journal(Config(cluster=ClusterConfig(redis=redis_url)))
    assert journal is not None and journal.location.startswith("redis://127.0.0.1")
    # jobs.url = off still means no journal at all.
    assert get_journal(Config(cluster=ClusterConfig(redis=redis_url), jobs=JobsConfig(url="off"))) is None


def test_single_flight_across_processes_opens_one_entry(redis_url, tmp_path):
    go = tmp_path / "go"
    racers = [
        worker({"do": "open", "url": redis_url, "id": new_entry_id(), "key": "same-key", "go": str(go)})
        for _ in range(6)
    ]
    go.touch()
    answers = [line for process in racers for line in lines(process)]
    assert sum(answer["created"] for answer in answers) == 1
    assert len({answer["id"] for answer in answers}) == 1  # everyone attached to that one


def test_open_attaches_to_an_active_entry_and_force_only_ignores_unknown(redis_url):
    journal = redis_journal(redis_url, "reelgen")
    first = journal.open(_entry())
    assert first.created
    again = journal.open(_entry())
    assert not again.created and again.entry.id == first.entry.id
    journal.update(first.entry.id, state="unknown")
    assert not journal.open(_entry()).created  # an unresolved unknown blocks a blind re-submit
    forced = journal.open(_entry(), force=True)
    assert forced.created and forced.entry.id != first.entry.id
    # A new take (shared=False) never attaches and is never attached to.
    take = journal.open(_entry(shared=False))
    assert take.created and journal.active_for("k" * 64).id != take.entry.id


def test_finished_entries_are_not_attached_to(redis_url):
    journal = redis_journal(redis_url, "reelgen")
    first = journal.open(_entry()).entry
    journal.update(first.id, state="succeeded", finished_at=time.time())
    assert journal.active_for(first.key) is None
    assert journal.open(_entry()).created


def test_update_is_a_compare_and_set_on_the_owner(redis_url):
    journal = redis_journal(redis_url, "reelgen")
    entry = journal.open(_entry()).entry
    stranger = Owner(host="elsewhere", pid=1, started=None)
    assert journal.update(entry.id, expect_owner=stranger, state="running") is None
    updated = journal.update(entry.id, expect_owner=entry.owner, state="running", task_id="t-1")
    assert updated is not None and updated.state == "running"
    assert journal.get("fake:t-1") == updated == journal.get(entry.id)
    assert journal.claimed("fake", ["t-1", "t-2"]) == {"t-1"}


def test_exactly_one_adopter_wins_across_processes(redis_url, tmp_path):
    journal = redis_journal(redis_url, "reelgen")
    dead = Owner(host="gone-host", pid=4242, started=1.0)
    entry = journal.open(_entry(owner=dead, heartbeat=0.0)).entry
    go = tmp_path / "go"
    spec = {"do": "adopt", "url": redis_url, "id": entry.id, "expected": attrs.asdict(dead), "go": str(go)}
    adopters = [worker(spec) for _ in range(5)]
    go.touch()
    assert sum(line["adopted"] for process in adopters for line in lines(process)) == 1
    assert journal.get(entry.id).owner != dead


def test_list_shows_every_machine_s_jobs_newest_first_by_state(redis_url):
    journal = redis_journal(redis_url, "reelgen")
    hosts = ["machine-a", "machine-b", "machine-c"]
    made = []
    for index, host in enumerate(hosts):
        entry = _entry(key=f"key-{index}", submitted_at=1000.0 + index, owner=Owner(host=host, pid=10, started=None))
        made.append(journal.open(entry).entry)
    journal.update(made[0].id, state="succeeded")
    assert [e.owner.host for e in journal.list()] == ["machine-c", "machine-b", "machine-a"]
    assert [e.id for e in journal.list(states=["submitting"])] == [made[2].id, made[1].id]
    assert [e.id for e in journal.list(states=["succeeded", "submitting"], limit=2)] == [made[2].id, made[1].id]
    assert journal.list(limit=0) == []


def test_nothing_secret_and_every_key_namespaced(redis_url):
    journal = redis_journal(redis_url, "team-x")
    journal.open(_entry())
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = client.keys("*")
    assert keys and all(key.startswith("team-x:journal:") for key in keys)


def test_a_redis_that_is_down_refuses_the_journal_before_anything_is_paid():
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(JournalError, match="cannot reach Redis"):
        get_journal(Config(cluster=ClusterConfig(redis=dead)))
