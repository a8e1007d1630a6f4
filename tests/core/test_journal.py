"""The job journal (SQLite), hooks through pluggy, the image read once, and cancel that wins.

Real SQLite files, real processes for owner liveness, a real HTTP file server for videos.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import reelgen
from reelgen.config import Config, JobsConfig
from reelgen.errors import Cancelled, ValidationError
from reelgen.journal import JournalEntry, Owner, get_journal, new_entry_id, parse_job_id
from reelgen.plugins import get_plugin_manager
from tests.helpers.fake_provider import FakeProvider, Script
from tests.helpers.server import file_server


def _entry(key: str = "k", **changes) -> JournalEntry:
    fields = {
        "id": new_entry_id(),
        "provider": "fake",
        "model": "m",
        "key": key,
        "state": "submitting",
        "owner": Owner.current(),
        "submitted_at": 1.0,
    }
    fields.update(changes)
    return JournalEntry(**fields)


@pytest.fixture
def journal(tmp_path):
    return get_journal(Config(jobs=JobsConfig(url=f"sqlite:///{tmp_path / 'jobs.db'}")))


def test_open_is_single_flight_per_key_and_force_skips_only_unknown(journal):
    first = journal.open(_entry())
    assert first.created
    second = journal.open(_entry())
    assert not second.created and second.entry.id == first.entry.id
    assert journal.open(_entry(shared=False)).created  # a new take never attaches
    journal.update(first.entry.id, state="unknown")
    assert not journal.open(_entry()).created  # unknown blocks...
    assert journal.open(_entry(), force=True).created  # ...until forced
    journal.update(first.entry.id, state="failed")
    assert journal.active_for("other") is None


def test_entries_round_trip_through_cattrs_and_are_found_by_job_id(journal):
    opened = journal.open(_entry(request={"prompt": "p", "reference_image": "sha256:ab"}))
    updated = journal.update(opened.entry.id, state="queued", task_id="t-1", job={"task_id": "t-1"})
    assert journal.get("fake:t-1") == updated == journal.get(opened.entry.id)
    assert journal.claimed("fake", ["t-1", "t-2"]) == {"t-1"}
    assert [e.id for e in journal.list(states=["queued"])] == [opened.entry.id]


def test_adopt_is_a_compare_and_set_exactly_one_adopter_wins(journal):
    dead = Owner(host=Owner.current().host, pid=2**22 + 12345, started=1.0)
    opened = journal.open(_entry(owner=dead))
    assert opened.entry.orphaned()
    me = Owner.current()
    assert journal.adopt(opened.entry.id, dead, me) is not None
    assert journal.adopt(opened.entry.id, dead, Owner(host="x", pid=1)) is None
    assert journal.get(opened.entry.id).owner == me and not journal.get(opened.entry.id).orphaned()


def test_a_dead_process_is_an_orphan_and_a_reused_pid_too():
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = Owner(host=Owner.current().host, pid=int(child.stdout), started=1.0)
    assert not gone.is_alive(0.0)
    me = Owner.current()
    assert me.is_alive(0.0)
    assert not Owner(host=me.host, pid=me.pid, started=(me.started or 0) + 1).is_alive(0.0)  # pid reused
    far = Owner(host="another-host", pid=1)
    assert far.is_alive(heartbeat=1000.0, now=1010.0) and not far.is_alive(heartbeat=0.0, now=1000.0)


def test_a_killed_process_nobody_reaped_is_an_orphan():
    # A worker killed with its parent (kill -9 of the group) stays a zombie where nothing
    # reaps orphans: its pid still takes signals, but it will never drive its jobs again.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = Owner(host=Owner.current().host, pid=child.pid, started=None)
        assert started.is_alive(0.0)
        child.kill()
        deadline = time.monotonic() + 30
        while b") Z" not in Path(f"/proc/{child.pid}/stat").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)  # not reaped: this test is its parent and has not waited yet
        assert not started.is_alive(0.0)
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("bad", ["bailian_wan:../../etc", "x", "1abc:task", "p:", "p:a b", "p:" + "a" * 129])
def test_job_ids_are_validated(bad):
    with pytest.raises(ValidationError):
        parse_job_id(bad)


def test_a_damaged_journal_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "jobs.db"
    path.write_bytes(b"not sqlite" * 500)
    with pytest.raises(reelgen.ConfigError, match=str(path)) as caught:
        get_journal(Config(jobs=JobsConfig(url=f"sqlite:///{path}"))).list()
    assert "move it aside" in str(caught.value)


async def test_cancel_wins_over_a_poll_delay_of_zero(config, mp4_bytes):
    """Item 13: `wait()` after `cancel()` never returns a video, even when the provider cannot
    stop the job and its poll delay is 0."""
    with file_server() as server:
        script = Script(url=server.add("/v.mp4", mp4_bytes), states=["running"] * 3, poll_delay=0.0)
        script.cancel_result = False
        provider = FakeProvider(script)
        job = await reelgen.submit(
            reelgen.VideoRequest(prompt="p", duration=1, fps=10, size="64*64"), provider, config=config
        )
        assert await job.cancel() is False
        with pytest.raises(Cancelled) as caught:
            await job.wait()
    assert not caught.value.remote_cancelled and "billed" in str(caught.value)


async def test_a_preview_cancel_is_honoured_by_resume_elsewhere(config, tmp_path):
    """Item 13: another instance (as in another process: nothing in memory) must not render it."""
    from reelgen_preview.provider import PreviewProvider

    work = {"work_dir": str(tmp_path / "renders")}
    request = reelgen.VideoRequest(
        prompt="p", duration=1, fps=8, size="64*48", options={"preview": {"render_delay": 30.0}}
    )
    job = await reelgen.submit(request, PreviewProvider(work), config=config)
    assert await job.cancel() is True
    with pytest.raises(Cancelled):
        await reelgen.resume(job.id, config=config, provider=PreviewProvider(work)).wait()
    assert not list((tmp_path / "renders").glob("*.mp4"))


class _Wrapper:
    """A plugin with standard `wrapper=True` implementations around storage and cache."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @reelgen.hookimpl(wrapper=True)
    def reelgen_store_video(self, request, result, source, config, job_id):
        stored = yield
        self.calls.append(f"store:{job_id}")
        return stored

    @reelgen.hookimpl(wrapper=True)
    def reelgen_cache_get(self, key):
        found = yield
        self.calls.append("get:" + ("hit" if found is not None else "miss"))
        return found

    @reelgen.hookimpl(wrapper=True)
    def reelgen_cache_put(self, key):
        yield
        self.calls.append("put")


async def test_wrapper_plugins_see_every_storage_and_cache_call(config, tmp_path):
    """Issue 9 item 2: a standard pluggy wrapper used to make every generation fail."""
    from reelgen_preview.provider import PreviewProvider

    plugin = _Wrapper()
    pm = get_plugin_manager()
    pm.register(plugin, name="test-wrapper")
    try:
        provider = PreviewProvider({"work_dir": str(tmp_path / "renders")})
        request = reelgen.VideoRequest(prompt="p", duration=1, fps=8, size="64*48")
        first = await reelgen.agenerate(request, provider, config=config)
        second = await reelgen.agenerate(request, provider, config=config)
    finally:
        pm.unregister(plugin)
    assert second.cached and not first.cached
    assert plugin.calls == ["get:miss", f"store:preview:{first.task_id}", "put", "get:hit"]


@pytest.fixture
def image_reads():
    """Count `open` audit events on one path (set `.path`); audit hooks cannot be removed, so
    the hook stays installed and only counts while a path is set."""
    counter = _OpenCounter()
    sys.addaudithook(counter)
    yield counter
    counter.path = None


class _OpenCounter:
    def __init__(self) -> None:
        self.path: str | None = None
        self.count = 0

    def __call__(self, event: str, args: tuple) -> None:
        if event == "open" and self.path is not None and args and str(args[0]) == self.path:
            self.count += 1


async def test_the_reference_image_is_read_once_with_preview(config, tmp_path, photo, image_reads):
    """Issue 9 item 3: it was read 5 times per generation with preview."""
    from reelgen_preview.provider import PreviewProvider

    image = tmp_path / "photo.jpg"
    image.write_bytes(Path(photo).read_bytes() if not isinstance(photo, bytes) else photo)
    image_reads.path = str(image)
    request = reelgen.VideoRequest(prompt="p", duration=1, fps=8, size="64*48", reference_image=str(image))
    await reelgen.agenerate(request, PreviewProvider({"work_dir": str(tmp_path / "r")}), config=config)
    image_reads.path = None
    assert image_reads.count == 1


def test_clearing_a_damaged_cache_moves_it_aside_and_keeps_it(tmp_path):
    """Item 11: `cache clear` works on a corrupt file, and never deletes user data silently."""
    from reelgen._store import open_cache

    path = tmp_path / "cache.db"
    garbage = b"not sqlite" * 500
    path.write_bytes(garbage)
    store = open_cache(f"sqlite:///{path}")
    with pytest.raises(reelgen.ConfigError, match="cache clear"):
        store.cache_list()
    assert store.cache_clear() == 0
    assert store.moved_aside is not None and store.moved_aside.read_bytes() == garbage
    assert open_cache(f"sqlite:///{path}").cache_list() == []  # a fresh cache in its place
