"""The generate pipeline, driven with a scriptable provider serving real MP4s over real HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

import reelgen
from reelgen.errors import (
    Cancelled,
    GenerationTimeout,
    ProviderFailed,
    RateLimited,
    StorageError,
    StrictWarningError,
    SubmissionUnknown,
    ValidationError,
)
from reelgen.journal import get_journal
from reelgen.probe import probe_video
from tests.helpers.fake_provider import FakeProvider, Script, transient
from tests.helpers.server import FileServer, file_server


@pytest.fixture
def server():
    with file_server() as running:
        yield running


def _path(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def _request(**changes):
    fields = {"prompt": "a slow pan", "duration": 1, "fps": 10, "size": "64*64"}
    fields.update(changes)
    return reelgen.VideoRequest(**fields)


async def test_success_measures_stores_and_reports_events_in_order(config, server: FileServer, mp4_bytes):
    provider = FakeProvider(Script(url=server.add("/v.mp4", mp4_bytes)))
    events = []
    result = await reelgen.agenerate(_request(), provider, config=config, on_event=events.append)

    kinds = [e.kind for e in events]
    assert [k for k in kinds if k not in ("estimate", "warning")][:2] == ["journaled", "submitted"]
    assert kinds[-3:] == ["downloaded", "stored", "succeeded"]
    assert "status" in kinds and kinds.index("status") < kinds.index("downloaded")
    # Before the provider names the task, the job is known by its journal entry's id.
    journaled = next(e for e in events if e.kind == "journaled")
    assert journaled.job_id.startswith("j-") and journaled.data["entry_id"] == journaled.job_id
    assert {e.job_id for e in events[kinds.index("submitted") :]} == {"fake:task-1"}

    stored = _path(result.video_url)
    assert stored.is_file() and stored.read_bytes() == mp4_bytes
    assert stored.parent == Path(config.storage.url).resolve()
    assert result.source_url == server.base_url + "/v.mp4" != result.video_url
    assert (result.duration, result.fps, result.size, result.seed) == (1.0, 10.0, "64*64", 7)
    assert result.bytes == len(mp4_bytes) and result.warnings == [] and not result.cached
    assert result.task_id == "task-1" and result.usage == {"seconds": 1}


async def test_second_identical_call_is_a_cache_hit_without_provider_calls(config, server, mp4_bytes):
    provider = FakeProvider(Script(url=server.add("/v.mp4", mp4_bytes)))
    first = await reelgen.agenerate(_request(), provider, config=config)
    calls = list(provider.calls)
    events = []
    second = await reelgen.agenerate(_request(), provider, config=config, on_event=events.append)
    assert provider.calls == calls
    assert second.cached and second.video_url == first.video_url
    assert [e.kind for e in events] == ["cache_hit"]
    third = await reelgen.agenerate(_request(), provider, config=config, use_cache=False)
    assert not third.cached and provider.calls.count("submit") == 2


async def test_cache_hit_whose_file_was_deleted_generates_again(config, server, mp4_bytes):
    provider = FakeProvider(Script(url=server.add("/v.mp4", mp4_bytes)))
    first = await reelgen.agenerate(_request(), provider, config=config)
    _path(first.video_url).unlink()
    again = await reelgen.agenerate(_request(), provider, config=config)
    assert not again.cached and provider.calls.count("submit") == 2
    assert _path(again.video_url).is_file()


async def test_transient_poll_errors_do_not_fail_a_running_job(config, server, mp4_bytes):
    script = Script(url=server.add("/v.mp4", mp4_bytes), poll_errors=[transient(), transient(), None])
    provider = FakeProvider(script)
    result = await reelgen.agenerate(_request(), provider, config=config)
    assert result.duration == 1.0
    assert provider.calls.count("poll") >= 5


async def test_terminal_failure_keeps_the_provider_code_and_is_recorded(config, server, mp4_bytes):
    failure = ProviderFailed("boom", provider="fake", code="InternalError", request_id="r-1", task_id="task-1")
    provider = FakeProvider(Script(states=["running", "failed"], failure=failure))
    events = []
    with pytest.raises(ProviderFailed) as caught:
        await reelgen.agenerate(_request(), provider, config=config, on_event=events.append)
    assert caught.value.code == "InternalError" and caught.value.request_id == "r-1"
    assert events[-1].kind == "failed" and events[-1].data["error_type"] == "ProviderFailed"
    record = get_journal(config).get("fake:task-1")
    assert record is not None and record.state == "failed" and "boom" in (record.error or "")


async def test_throttled_submit_is_retried_but_an_unknown_outcome_never_is(config, server, mp4_bytes, monkeypatch):
    monkeypatch.setattr("reelgen._creating.backoff_delay", lambda *a, **k: 0.01)
    url = server.add("/v.mp4", mp4_bytes)
    provider = FakeProvider(Script(url=url, submit_errors=[RateLimited("429", provider="fake")] * 2))
    await reelgen.agenerate(_request(), provider, config=config)
    assert provider.calls.count("submit") == 3

    unknown = FakeProvider(Script(url=url, submit_errors=[SubmissionUnknown("no answer", provider="fake")]))
    with pytest.raises(SubmissionUnknown):
        await reelgen.agenerate(_request(seed=1), unknown, config=config)
    assert unknown.calls == ["submit"]


async def test_deadline_raises_timeout_naming_the_job(config):
    provider = FakeProvider(Script(states=["running"], poll_delay=0.05))
    with pytest.raises(GenerationTimeout) as caught:
        await reelgen.agenerate(_request(), provider, config=config, deadline=0.3)
    # On expiry the remote job is cancelled where the provider allows it (the fake does).
    assert caught.value.job_id == "fake:task-1" and "cancelled" in str(caught.value)
    assert get_journal(config).get("fake:task-1").state == "cancelled"


async def test_cancel_stops_the_remote_job_and_wakes_the_waiter(config):
    provider = FakeProvider(Script(states=["running"], poll_delay=10))
    events = []
    job = await reelgen.submit(_request(), provider, config=config, on_event=events.append)
    waiter = asyncio.create_task(job.wait())
    await asyncio.sleep(0.05)
    assert await job.cancel() is True
    with pytest.raises(Cancelled) as caught:
        await asyncio.wait_for(waiter, 5)
    assert caught.value.remote_cancelled and "cancel" in provider.calls
    assert any(e.kind == "cancelled" and e.data["remote_cancelled"] for e in events)


async def test_cancel_that_the_provider_refuses_says_the_job_may_be_billed(config):
    provider = FakeProvider(Script(states=["running"], poll_delay=10, cancel_result=False))
    job = await reelgen.submit(_request(), provider, config=config)
    waiter = asyncio.create_task(job.wait())
    await asyncio.sleep(0.05)
    assert await job.cancel() is False
    with pytest.raises(Cancelled) as caught:
        await asyncio.wait_for(waiter, 5)
    assert not caught.value.remote_cancelled and "billed" in str(caught.value)


async def test_interrupting_the_waiting_task_cancels_the_remote_job(config):
    provider = FakeProvider(Script(states=["running"], poll_delay=0.02))
    task = asyncio.create_task(reelgen.agenerate(_request(), provider, config=config))
    for _ in range(600):
        if "poll" in provider.calls:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "cancel" in provider.calls


async def test_truncated_download_is_retried_and_the_stored_file_is_whole(config, server, mp4_bytes, monkeypatch):
    monkeypatch.setattr("reelgen._delivery.backoff_delay", lambda *a, **k: 0.01)
    url = server.add("/v.mp4", mp4_bytes, faults=["truncate", "500", "reset"])
    result = await reelgen.agenerate(_request(), FakeProvider(Script(url=url)), config=config)
    assert server.files["/v.mp4"].hits == 4
    assert _path(result.video_url).read_bytes() == mp4_bytes
    assert probe_video(_path(result.video_url), decode=True).frames == 10


async def test_a_body_that_is_not_an_mp4_is_never_stored(config, server, monkeypatch):
    monkeypatch.setattr("reelgen._delivery.backoff_delay", lambda *a, **k: 0.01)
    url = server.add("/v.mp4", b"<html>expired</html>" * 10, content_type="text/html")
    with pytest.raises(StorageError, match="not an MP4"):
        await reelgen.agenerate(_request(), FakeProvider(Script(url=url)), config=config)
    storage = Path(config.storage.url)
    assert not storage.exists() or list(storage.iterdir()) == []


async def test_an_expired_source_url_fails_at_once_with_a_clear_error(config, server):
    url = server.add("/gone.mp4", b"", faults=["404"])
    with pytest.raises(StorageError, match="expired"):
        await reelgen.agenerate(_request(), FakeProvider(Script(url=url)), config=config)
    assert server.files["/gone.mp4"].hits == 1


async def test_size_cap_rejects_the_video_and_leaves_nothing_behind(config, server, mp4_bytes):
    capped = config.evolve(storage=reelgen.config.StorageConfig(url=config.storage.url, max_bytes=len(mp4_bytes) - 1))
    url = server.add("/v.mp4", mp4_bytes)
    with pytest.raises(StorageError, match="cap"):
        await reelgen.agenerate(_request(), FakeProvider(Script(url=url)), config=capped)
    storage = Path(config.storage.url)
    assert not storage.exists() or list(storage.iterdir()) == []


async def test_invalid_request_fails_before_any_provider_call(config):
    provider = FakeProvider(Script())
    with pytest.raises(ValidationError) as caught:
        await reelgen.agenerate(_request(duration=90), provider, config=config)
    assert caught.value.field == "duration" and provider.calls == []


async def test_strict_turns_warnings_into_an_error_before_submitting(config):
    caps = reelgen.Capabilities(model="fake-1", native_fps=(30.0,), size_multiple_of=2)
    provider = FakeProvider(Script(), capabilities=caps)
    with pytest.raises(StrictWarningError, match="30 fps"):
        await reelgen.agenerate(_request(fps=24), provider, config=config, strict=True)
    assert provider.calls == []


async def test_differences_between_request_and_file_are_warnings(config, server, mp4_bytes):
    provider = FakeProvider(Script(url=server.add("/v.mp4", mp4_bytes), seed=99))
    result = await reelgen.agenerate(_request(fps=24, size="128*64", duration=2, seed=5), provider, config=config)
    text = " | ".join(result.warnings)
    assert "fps: asked for 24" in text and "size: asked for 128*64, the video is 64*64" in text
    assert "duration: asked for 2" in text
    assert result.seed == 5  # the fake echoes a given seed


async def test_a_failing_event_observer_does_not_break_the_generation(config, server, mp4_bytes):
    def observer(event):
        raise RuntimeError("observer bug")

    result = await reelgen.agenerate(
        _request(), FakeProvider(Script(url=server.add("/v.mp4", mp4_bytes))), config=config, on_event=observer
    )
    assert result.bytes == len(mp4_bytes)


async def test_resume_finishes_a_job_and_caches_it_under_the_original_key(config, server, mp4_bytes):
    provider = FakeProvider(Script(states=["running", "running", "succeeded"], url=server.add("/v.mp4", mp4_bytes)))
    job = await reelgen.submit(_request(), provider, config=config)
    resumed = reelgen.resume(job.id, config=config, provider=provider)
    assert resumed.id == job.id and resumed.request == _request()
    result = await resumed.wait()
    assert result.duration == 1.0
    hit = await reelgen.agenerate(_request(), provider, config=config)
    assert hit.cached and hit.video_url == result.video_url
    done = reelgen.resume(job.id, config=config, provider=provider)
    assert done.done and (await done.wait()).video_url == result.video_url


def test_sync_generate_refuses_to_run_inside_an_event_loop(config):
    async def inner():
        reelgen.generate(_request(), FakeProvider(Script()), config=config)

    with pytest.raises(RuntimeError, match="agenerate"):
        asyncio.run(inner())


async def test_resuming_a_finished_job_keeps_its_id_and_result(config, server, mp4_bytes):
    provider = FakeProvider(Script(url=server.add("/v.mp4", mp4_bytes)))
    job = await reelgen.submit(_request(), provider, config=config)
    result = await job.wait()
    again = reelgen.resume(job.id, config=config, provider=provider)
    assert again.done and again.id == job.id and again.task_id == "task-1"
    assert (await again.wait()) == result
    assert (await again.status()).state == "succeeded"
    assert await again.cancel() is False


async def test_omitted_duration_fps_and_size_take_the_providers_declared_defaults(config, server, mp4_bytes):
    """Issue 9 item 4: fixed 5 s / 30 fps / 1280*720 used to fail outright on a provider offering only 1 or 2 s."""
    from reelgen.capabilities import Capabilities

    caps = Capabilities(
        model="fake-1",
        durations=(1.0, 2.0),
        fps_range=(1, 60),
        sizes=("64*64",),
        cancel="any",
        default_duration=1.0,
        default_fps=10.0,
        default_size="64*64",
    )
    provider = FakeProvider(Script(url=server.add("/v.mp4", mp4_bytes)), capabilities=caps)
    request = reelgen.VideoRequest(prompt="a slow pan")
    result = await reelgen.agenerate(request, provider, config=config)
    sent = provider.validated[-1]
    assert (sent.duration, sent.fps, sent.size) == (1.0, 10.0, "64*64") and result.warnings == []
    # The key the gate used is the one request_key reports, and an explicit equal request hits it.
    explicit = reelgen.VideoRequest(prompt="a slow pan", duration=1, fps=10, size="64*64")
    assert reelgen.request_key(request, provider) == reelgen.request_key(explicit, provider)
    assert (await reelgen.agenerate(explicit, provider, config=config)).cached
    # Given explicitly, a value is kept and checked as given.
    with pytest.raises(ValidationError, match="duration 5"):
        await reelgen.agenerate(reelgen.VideoRequest(prompt="x", duration=5), provider, config=config)


async def test_warnings_are_announced_before_anything_is_submitted(config, server, mp4_bytes):
    """Issue 8 item 10: every warning comes before the submit."""
    from reelgen.capabilities import Capabilities

    caps = Capabilities(model="fake-1", duration_range=(0.5, 30), native_fps=(10.0,), cancel="any")
    provider = FakeProvider(Script(url=server.add("/v.mp4", mp4_bytes)), capabilities=caps)
    events = []
    await reelgen.agenerate(_request(fps=24), provider, config=config, on_event=events.append)
    kinds = [e.kind for e in events]
    assert "warning" in kinds and kinds.index("warning") < kinds.index("submitted")
    assert "10 fps" in next(e for e in events if e.kind == "warning").data["message"]


class _SlowSubmit(FakeProvider):
    async def submit(self, request):
        self.calls.append("submit-started")
        await asyncio.sleep(0.3)
        return await super().submit(request)


async def test_a_caller_attaching_while_the_create_is_in_flight_shares_it(config, server, mp4_bytes):
    """Issue 8 item 3, in one process: the second caller joins the first's create, not a second one."""
    provider = _SlowSubmit(Script(url=server.add("/v.mp4", mp4_bytes)))
    first = asyncio.create_task(reelgen.agenerate(_request(), provider, config=config))
    for _ in range(600):
        if "submit-started" in provider.calls:
            break
        await asyncio.sleep(0.01)
    events = []
    second = await reelgen.agenerate(_request(), provider, config=config, on_event=events.append)
    assert (await first).video_url == second.video_url
    assert provider.calls.count("submit") == 1
    assert any(e.kind == "attached" and e.data["why"] == "single-flight" for e in events)


class _OpaqueData(FakeProvider):
    async def submit(self, request):
        import attrs

        job = await super().submit(request)
        return attrs.evolve(job, data={"handle": object()})


async def test_job_data_that_is_not_json_is_refused_loudly_and_the_task_still_journaled(config):
    """A provider job must be findable from another process: opaque data is a plugin bug, said out loud."""
    provider = _OpaqueData(Script(states=["running"]))
    with pytest.raises(reelgen.PluginError, match="not JSON"):
        await reelgen.submit(_request(), provider, config=config)
    entry = get_journal(config).get("fake:task-1")
    assert entry is not None and entry.task_id == "task-1" and entry.job["data"] == {}
    assert entry.orphaned()  # let go: `reelgen jobs resume` or an identical request picks it up


async def test_an_unwritable_journal_stops_the_generation_before_anything_is_paid(config, tmp_path):
    """No entry, no payment: a journal that cannot be written is loud, before the create."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the journal's folder should be")
    provider = FakeProvider(Script(states=["running"]))
    bad = config.evolve(jobs=reelgen.config.JobsConfig(url=f"sqlite:///{blocker / 'jobs.db'}"))
    with pytest.raises(reelgen.ConfigError):
        await reelgen.submit(_request(), provider, config=bad)
    assert provider.calls == []


async def test_a_throttled_poll_honours_retry_after(config, server, mp4_bytes):
    """A 429 on a poll waits at least the provider's Retry-After before looking again, and says so."""
    import time

    throttled = RateLimited("slow down", provider="fake", retry_after=0.4)
    provider = FakeProvider(Script(url=server.add("/v.mp4", mp4_bytes), poll_errors=[None, throttled]))
    looks: list[float] = []
    real_poll = provider.poll

    async def timed_poll(job):
        looks.append(time.monotonic())
        return await real_poll(job)

    provider.poll = timed_poll
    events = []
    await reelgen.agenerate(_request(), provider, config=config, on_event=events.append)
    retry = next(e for e in events if e.kind == "retrying")
    assert retry.data["step"] == "poll" and retry.data["delay"] >= 0.4 and "slow down" in retry.data["reason"]
    assert looks[2] - looks[1] >= 0.4


async def test_reconciling_is_bounded_by_the_deadline_not_only_the_request_timeout(config):
    """A task list that answers slowly must not hold the caller past the deadline: the
    create stays `unknown` (named, resumable) and the call returns."""

    class SlowList(FakeProvider):
        async def find_jobs(self, request, *, since, until):
            self.calls.append("find_jobs")
            await asyncio.sleep(3600)
            return []

    provider = SlowList(Script(submit_errors=[SubmissionUnknown("the reply was lost", provider="fake")]))
    with pytest.raises(SubmissionUnknown) as caught:
        await asyncio.wait_for(reelgen.agenerate(_request(), provider, config=config, deadline=1.0), 60)
    assert "find_jobs" in provider.calls and caught.value.job_id.startswith("j-")
    assert get_journal(config).get(caught.value.job_id).state == "unknown"


async def test_wait_after_cancel_on_a_shared_handle_is_cancelled_even_if_the_job_finished(config, server, mp4_bytes):
    """`wait()` after `cancel()` raises `Cancelled` on that handle, though the job it shares
    had finished through another handle; the other keeps its result."""
    provider = FakeProvider(Script(url=server.add("/v.mp4", mp4_bytes)))
    first = await reelgen.submit(_request(), provider, config=config)
    second = await reelgen.submit(_request(), provider, config=config)  # single-flight: the same job
    assert second.id == first.id
    result = await first.wait()
    assert await second.cancel() is False
    with pytest.raises(Cancelled) as caught:
        await second.wait()
    assert not caught.value.remote_cancelled and result.video_url in str(caught.value)
    assert await first.wait() == result and provider.calls.count("submit") == 1


async def test_resuming_a_never_sent_entry_whose_request_is_whole_sends_it_once(config, server, mp4_bytes):
    """The dead owner never sent the create (`sent_at` is None) and the journal holds the
    whole request (no image): resume sends it, once, and delivers."""
    import time

    from reelgen.journal import JournalEntry, Owner, new_entry_id

    provider = FakeProvider(Script(url=server.add("/v.mp4", mp4_bytes)))
    key = reelgen.request_key(_request(), provider, config=config)
    now = time.time()
    orphan = JournalEntry(
        id=new_entry_id(),
        provider="fake",
        model=provider.capabilities.model,
        key=key,
        state="submitting",
        owner=Owner(host=Owner.current().host, pid=2**22 + 4321, started=1.0),
        submitted_at=now,
        updated_at=now,
        heartbeat=now,
        request={"prompt": "a slow pan", "duration": 1.0, "fps": 10.0, "size": "64*64"},
    )
    get_journal(config).open(orphan)
    result = await reelgen.resume(orphan.id, config=config, provider=provider).wait()
    assert provider.calls.count("submit") == 1 and result.task_id == "task-1"
    assert get_journal(config).get(orphan.id).state == "succeeded"
