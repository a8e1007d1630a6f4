"""Never pay twice, never lose a paid video (issue 8), through the real SDK against the emulator.

Every test counts what the emulator was asked to create: the money is in `tasks_created`.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

import reelgen
from reelgen.config import CacheConfig, Config, JobsConfig, StorageConfig
from reelgen.errors import DeliveryFailed, GenerationTimeout, SubmissionUnknown, ValidationError
from reelgen.journal import get_journal
from reelgen_bailian_wan.emulator import Faults
from tests.providers.bailian_wan.helpers import provider_for, request


def make_config(tmp_path: Path, *, cache: bool = True, **changes: object) -> Config:
    fields: dict[str, object] = {
        "storage": StorageConfig(url=str(tmp_path / "videos")),
        "cache": CacheConfig(url=f"sqlite:///{tmp_path / 'cache.db'}" if cache else "off"),
        "jobs": JobsConfig(url=f"sqlite:///{tmp_path / 'jobs.db'}"),
        "deadline": 60,
    }
    fields.update(changes)
    return Config(**fields)  # type: ignore[arg-type]


def created(emulator) -> int:
    return emulator.counters()["tasks_created"]


def _dead_orphan(provider, key: str, *, sent_at: float | None):
    """A `submitting` entry of `key` whose owner is a process that no longer exists."""
    import time

    from reelgen.journal import JournalEntry, Owner, new_entry_id

    now = time.time()
    return JournalEntry(
        id=new_entry_id(),
        provider="bailian_wan",
        model=provider.capabilities.model,
        key=key,
        state="submitting",
        owner=Owner(host=Owner.current().host, pid=2**22 + 4321, started=1.0),
        submitted_at=now,
        updated_at=now,
        heartbeat=now,
        sent_at=sent_at,
        request={"prompt": "waves against a lighthouse", "duration": 2.0, "fps": 30.0, "size": "1280*720"},
    )


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_resume_caches_under_the_journals_key_even_with_an_image(dashscope_emulator, wide_photo, tmp_path):
    """Item 1: the resumed result is cached under the journal's key (the image is only a hash there)."""
    config = make_config(tmp_path)
    job = await reelgen.submit(request(wide_photo), provider_for(dashscope_emulator), config=config)
    # Another process (another provider instance, nothing in memory) finishes it.
    resumed = await reelgen.resume(job.id, config=config, provider=provider_for(dashscope_emulator)).wait()
    assert resumed.task_id == job.task_id
    again = await reelgen.agenerate(request(wide_photo), provider_for(dashscope_emulator), config=config)
    assert again.cached and again.video_url == resumed.video_url
    assert created(dashscope_emulator) == 1


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_identical_requests_in_one_process_share_one_task(dashscope_emulator, wide_photo, tmp_path):
    """Item 3: single-flight in-process."""
    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator)
    results = await asyncio.wait_for(
        asyncio.gather(*(reelgen.agenerate(request(wide_photo), provider, config=config) for _ in range(4))), 60
    )
    assert created(dashscope_emulator) == 1
    assert len({r.video_url for r in results}) == 1 and len({r.task_id for r in results}) == 1


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_no_cache_is_a_new_take_and_leaves_the_cache_alone(dashscope_emulator, wide_photo, tmp_path):
    """Items 3 and 5: use_cache=False makes a new task, neither reads nor writes the cache."""
    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator)
    first = await reelgen.agenerate(request(wide_photo), provider, config=config, use_cache=False)
    second = await reelgen.agenerate(request(wide_photo), provider, config=config, use_cache=False)
    assert created(dashscope_emulator) == 2 and first.task_id != second.task_id
    from reelgen._store import open_cache

    assert open_cache(config.cache.url).cache_list() == []


@pytest.mark.dashscope_emulator(render_mode="still")
@pytest.mark.parametrize("fault", ["create_reply_reset", "create_reply_5xx"])
async def test_a_lost_create_reply_is_reconciled_not_paid_twice(dashscope_emulator, wide_photo, tmp_path, fault):
    """Item 4: the task was created and its reply lost: the task list finds it; one task, delivered."""
    dashscope_emulator.script_faults(fault)
    config = make_config(tmp_path)
    events = []
    result = await reelgen.agenerate(
        request(wide_photo), provider_for(dashscope_emulator), config=config, on_event=events.append
    )
    assert created(dashscope_emulator) == 1
    assert result.task_id == dashscope_emulator.tasks()[0]["task_id"]
    assert any(e.kind == "attached" and e.data["why"] == "adopted" for e in events)
    entry = get_journal(config).get(f"bailian_wan:{result.task_id}")
    assert entry is not None and entry.state == "succeeded"


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_a_5xx_that_created_nothing_is_retried(dashscope_emulator, wide_photo, tmp_path):
    """Item 4: a 5xx create is ambiguous until the task list proves no task was made; then retried."""
    dashscope_emulator.script_faults("create_5xx")
    config = make_config(tmp_path)
    # Short read timeout: the empty list is proof once a late create could no longer land.
    provider = provider_for(dashscope_emulator, request_timeout=2.0)
    result = await reelgen.agenerate(request(wide_photo), provider, config=config)
    assert created(dashscope_emulator) == 1 and dashscope_emulator.counters()["creates"] == 2
    assert result.task_id == dashscope_emulator.tasks()[0]["task_id"]


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=1000)
async def test_two_candidates_stay_unknown_and_block_until_force(dashscope_emulator, wide_photo, tmp_path):
    """Item 4: more than one unclaimed candidate, and none tells itself apart (they echo the
    same prompt): `unknown`, the candidates shown, no blind re-submit."""
    provider = provider_for(dashscope_emulator)
    # A task made outside reelgen (another tool, the console) in the same window, same prompt.
    other = await provider.submit(request(wide_photo, seed=7))
    dashscope_emulator.script_faults("create_reply_reset")
    config = make_config(tmp_path)
    with pytest.raises(SubmissionUnknown) as caught:
        await reelgen.submit(request(wide_photo), provider, config=config)
    error = caught.value
    assert error.job_id and error.job_id.startswith("j-") and other.task_id in error.candidates
    assert len(error.candidates) == 2 and f"reelgen jobs resume {error.job_id}" in str(error)
    assert get_journal(config).get(error.job_id).state == "unknown"
    # An identical request does not pay again while that is unresolved...
    with pytest.raises(SubmissionUnknown, match="--force"):
        await reelgen.submit(request(wide_photo), provider, config=config)
    assert created(dashscope_emulator) == 2
    # ...unless asked to.
    forced = await reelgen.submit(request(wide_photo), provider, config=config, force=True)
    assert created(dashscope_emulator) == 3 and forced.task_id not in error.candidates
    await forced.cancel()


@pytest.mark.parametrize("bad", [math.nan, 0, -1, math.inf])
@pytest.mark.dashscope_emulator(render_mode="still")
async def test_bad_deadlines_are_refused_before_any_call(dashscope_emulator, wide_photo, tmp_path, bad):
    """Item 6."""
    provider = provider_for(dashscope_emulator)
    config = make_config(tmp_path)
    with pytest.raises(ValidationError, match="deadline"):
        await reelgen.agenerate(request(wide_photo), provider, config=config, deadline=bad)
    with pytest.raises(ValidationError, match="queue_timeout"):
        await reelgen.agenerate(request(wide_photo), provider, config=config, queue_timeout=bad)
    assert dashscope_emulator.counters()["creates"] == 0


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=1000)
async def test_a_deadline_shorter_than_the_slot_wait_creates_nothing(dashscope_emulator, wide_photo, tmp_path):
    """Item 6: the wait for a concurrency slot is bounded by the deadline; nothing is submitted after it."""
    config = make_config(tmp_path, limits={"bailian_wan": {"concurrency": 1}})
    provider = provider_for(dashscope_emulator)
    holder = await reelgen.submit(request(wide_photo, seed=1), provider, config=config)
    with pytest.raises(GenerationTimeout) as caught:
        await reelgen.agenerate(request(wide_photo, seed=2), provider, config=config, deadline=0.5)
    assert caught.value.job_id is None and "no task was created" in str(caught.value)
    assert created(dashscope_emulator) == 1
    await holder.cancel()


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=1000)
async def test_queue_timeout_cancels_the_queued_job(dashscope_emulator, wide_photo, tmp_path):
    """Item 6: a job still queued after queue_timeout is cancelled at the provider (not billed)."""
    config = make_config(tmp_path)
    with pytest.raises(GenerationTimeout, match="queue_timeout"):
        await reelgen.agenerate(request(wide_photo), provider_for(dashscope_emulator), config=config, queue_timeout=0.3)
    assert dashscope_emulator.counters()["tasks_by_status"]["CANCELED"] == 1


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_a_delivery_failure_after_payment_is_resumable(dashscope_emulator, wide_photo, tmp_path):
    """Item 9: too large for the cap -> delivery_failed naming `reelgen jobs resume ID`; resume delivers."""
    small = make_config(tmp_path, storage=StorageConfig(url=str(tmp_path / "videos"), max_bytes=1000))
    provider = provider_for(dashscope_emulator)
    events = []
    with pytest.raises(DeliveryFailed) as caught:
        await reelgen.agenerate(request(wide_photo), provider, config=small, on_event=events.append)
    job_id = caught.value.job_id
    assert job_id and job_id.startswith("bailian_wan:") and f"reelgen jobs resume {job_id}" in str(caught.value)
    assert get_journal(small).get(job_id).state == "delivery_failed"
    assert any(e.kind == "delivery_failed" and e.data["resume"] == f"reelgen jobs resume {job_id}" for e in events)
    roomy = make_config(tmp_path)
    resumed = []
    result = await reelgen.resume(
        job_id, config=roomy, provider=provider_for(dashscope_emulator), on_event=resumed.append
    ).wait()
    assert any(e.kind == "attached" and e.data["why"] == "delivery" for e in resumed)
    assert result.task_id == job_id.split(":", 1)[1] and Path(result.video_url.removeprefix("file://")).is_file()
    assert get_journal(roomy).get(job_id).state == "succeeded"
    # Cached under the journal's key: the identical request pays nothing more.
    again = await reelgen.agenerate(request(wide_photo), provider_for(dashscope_emulator), config=roomy)
    assert again.cached and created(dashscope_emulator) == 1


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_a_job_id_that_is_a_path_is_refused_before_any_request(dashscope_emulator, tmp_path):
    """Item 12: `bailian_wan:../../etc` used to send the API key to GET /api/etc."""
    config = make_config(tmp_path)
    for bad in ("bailian_wan:../../etc", "bailian_wan:", "bailian_wan:a/b", "../x:y", "bailian_wan:a?b"):
        with pytest.raises(ValidationError):
            reelgen.resume(bad, config=config, provider=provider_for(dashscope_emulator))
    counters = dashscope_emulator.counters()
    assert counters["queries"] == counters["creates"] == 0


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_an_unknown_option_namespace_is_an_error_with_a_suggestion(dashscope_emulator, wide_photo, tmp_path):
    """Item 12: `-o bailian.audio=false` used to be dropped silently (and audio doubles the price)."""
    typo = request(wide_photo, options={"bailian": {"audio": False}})
    with pytest.raises(ValidationError, match="did you mean 'bailian_wan'"):
        await reelgen.agenerate(typo, provider_for(dashscope_emulator), config=make_config(tmp_path))
    assert dashscope_emulator.counters()["creates"] == 0


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_an_unusable_cache_warns_and_the_generation_goes_on(dashscope_emulator, wide_photo, tmp_path, caplog):
    """Item 11: a corrupt cache file names itself; the generation still works."""
    (tmp_path / "cache.db").write_bytes(b"this is not a database" * 100)
    config = make_config(tmp_path)
    result = await reelgen.agenerate(request(wide_photo), provider_for(dashscope_emulator), config=config)
    assert result.bytes > 0
    assert str(tmp_path / "cache.db") in caplog.text and "not a usable SQLite database" in caplog.text


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_a_corrupt_journal_refuses_to_pay_naming_the_file(dashscope_emulator, wide_photo, tmp_path):
    """Items 2/11: no entry, no payment: the journal cannot be written, nothing is created."""
    (tmp_path / "jobs.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(reelgen.ConfigError, match=r"jobs\.db") as caught:
        await reelgen.agenerate(request(wide_photo), provider_for(dashscope_emulator), config=make_config(tmp_path))
    assert "move it aside" in str(caught.value)
    assert dashscope_emulator.counters()["creates"] == 0


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_a_cached_file_that_changed_is_a_miss(dashscope_emulator, wide_photo, tmp_path):
    """Item 11: a stored file whose sha256 no longer matches is not served from the cache."""
    config = make_config(tmp_path)
    first = await reelgen.agenerate(request(wide_photo), provider_for(dashscope_emulator), config=config)
    path = Path(first.video_url.removeprefix("file://"))
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    again = await reelgen.agenerate(request(wide_photo), provider_for(dashscope_emulator), config=config)
    assert not again.cached and created(dashscope_emulator) == 2


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_jobs_url_off_creates_no_file_named_off(dashscope_emulator, wide_photo, tmp_path, monkeypatch):
    """Item 5: one rule for "disabled"."""
    monkeypatch.chdir(tmp_path)
    for spelling in ("off", "none", "OFF ", "false", ""):
        config = make_config(tmp_path, jobs=JobsConfig(url=spelling), cache=False)
        assert get_journal(config) is None
    await reelgen.agenerate(
        request(wide_photo), provider_for(dashscope_emulator), config=make_config(tmp_path, jobs=JobsConfig(url="off"))
    )
    assert not (tmp_path / "off").exists() and not (tmp_path / "none").exists()


class _OpenCounter:
    """Counts `open` audit events on one path while `path` is set (audit hooks stay installed)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.count = 0

    def __call__(self, event: str, args: tuple) -> None:
        if event == "open" and self.path is not None and args and str(args[0]) == self.path:
            self.count += 1


@pytest.mark.dashscope_emulator(render_mode="still")
@pytest.mark.parametrize("upload", ["inline", "oss"])
async def test_the_reference_image_is_read_once(dashscope_emulator, wide_photo, tmp_path, upload):
    """Issue 9 item 3: it was read 6 times per generation with bailian_wan."""
    import sys

    counter = _OpenCounter()
    sys.addaudithook(counter)
    counter.path = str(wide_photo)
    try:
        await reelgen.agenerate(
            request(wide_photo, options={"bailian_wan": {"upload": upload}}),
            provider_for(dashscope_emulator),
            config=make_config(tmp_path),
        )
    finally:
        counter.path = None
    assert counter.count == 1


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_an_owner_killed_mid_create_is_reconciled_by_the_next_request(dashscope_emulator, wide_photo, tmp_path):
    """Items 3/4: the entry says `submitting` and its process is gone: the create may have
    happened. The next identical request adopts the entry and finds the task in the list."""
    import time

    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator)
    key = reelgen.request_key(request(wide_photo), provider, config=config)
    orphan = _dead_orphan(provider, key, sent_at=time.time())
    get_journal(config).open(orphan)
    made = await provider.submit(request(wide_photo))  # what the dead process had sent
    events = []
    result = await reelgen.agenerate(
        request(wide_photo), provider_for(dashscope_emulator), config=config, on_event=events.append
    )
    assert result.task_id == made.task_id and created(dashscope_emulator) == 1
    assert get_journal(config).get(orphan.id).state == "succeeded"
    assert [e.data["why"] for e in events if e.kind == "attached"] == ["adopted", "adopted"]


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_a_lone_candidate_is_not_adopted_while_another_create_is_in_flight(
    dashscope_emulator, wide_photo, tmp_path
):
    """Item 4: the list shows no prompt; a task another generation has sent but not yet
    named could pass for ours. Unknown until that create has answered; then resume adopts."""
    import time

    from reelgen.governor import account_for
    from reelgen.journal import JournalEntry, Owner, new_entry_id

    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator)
    now = time.time()
    other = JournalEntry(
        id=new_entry_id(),
        provider="bailian_wan",
        model=provider.capabilities.model,
        key="another request",
        state="submitting",
        account=account_for(provider).id,
        owner=Owner.current(),
        submitted_at=now,
        sent_at=now,
        heartbeat=now,
        request={"prompt": request(wide_photo).prompt},  # its task would echo our prompt too
    )
    journal = get_journal(config)
    journal.open(other)
    dashscope_emulator.script_faults("create_reply_reset")
    with pytest.raises(SubmissionUnknown) as caught:
        await reelgen.agenerate(request(wide_photo), provider, config=config)
    assert len(caught.value.candidates) == 1 and created(dashscope_emulator) == 1
    assert caught.value.candidates[0] in {task["task_id"] for task in dashscope_emulator.tasks()}
    journal.update(other.id, state="failed")  # that create has answered
    result = await reelgen.resume(caught.value.job_id, config=config, provider=provider_for(dashscope_emulator)).wait()
    assert result.task_id == caught.value.candidates[0] and created(dashscope_emulator) == 1


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_a_job_the_journal_never_saw_is_journaled_when_resumed(dashscope_emulator, wide_photo, tmp_path):
    """Every paid job can be found afterwards: one made elsewhere and collected by id is listed too."""
    config = make_config(tmp_path)
    made = await provider_for(dashscope_emulator).submit(request(wide_photo))
    result = await reelgen.resume(made.id, config=config, provider=provider_for(dashscope_emulator)).wait()
    entry = get_journal(config).get(made.id)
    assert entry is not None and entry.state == "succeeded" and entry.result == result and not entry.shared
    from reelgen._store import open_cache

    assert open_cache(config.cache.url).cache_list() == []  # its request is unknown: never cached


@pytest.mark.dashscope_emulator(render_mode="still", faults=Faults(create_reply_stall_seconds=3.0))
async def test_a_create_that_outlives_the_read_timeout_is_reconciled(dashscope_emulator, wide_photo, tmp_path):
    """Item 4: the read timeout fires after the task was made: found in the list, not paid twice."""
    dashscope_emulator.script_faults("create_reply_stall")
    provider = provider_for(dashscope_emulator, request_timeout=0.5)
    result = await reelgen.agenerate(request(wide_photo), provider, config=make_config(tmp_path))
    assert created(dashscope_emulator) == 1 and result.task_id == dashscope_emulator.tasks()[0]["task_id"]


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=1000)
async def test_a_fresh_submit_after_a_successful_cancel_is_a_new_job(dashscope_emulator, wide_photo, tmp_path):
    """A cancel that stopped the task ends it in the journal at once: the next identical
    request is a new job, not an attachment to the cancelled one (whose wait() is Cancelled)."""
    from reelgen.errors import Cancelled

    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator)
    first = await reelgen.submit(request(wide_photo), provider, config=config)
    assert await first.cancel() is True
    assert get_journal(config).get(first.id).state == "cancelled"
    second = await reelgen.submit(request(wide_photo), provider, config=config)
    assert second.id != first.id and created(dashscope_emulator) == 2
    assert (await second.status()).state == "queued"
    with pytest.raises(Cancelled):
        await first.wait()
    assert await second.cancel() is True


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=0, run_seconds=300)
async def test_a_cancel_that_could_not_stop_the_task_leaves_it_to_the_next_request(
    dashscope_emulator, wide_photo, tmp_path
):
    """A RUNNING task cannot be cancelled: it will be billed. The next identical request
    adopts it and delivers its video; only the handle that cancelled raises Cancelled."""
    from reelgen.errors import Cancelled

    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator)
    first = await reelgen.submit(request(wide_photo), provider, config=config)
    for _ in range(200):
        if (await first.status()).state == "running":
            break
        await asyncio.sleep(0.02)
    assert await first.cancel() is False
    events = []
    second = await reelgen.submit(request(wide_photo), provider, config=config, on_event=events.append)
    assert second.id == first.id
    result = await asyncio.wait_for(second.wait(), 60)
    assert result.task_id == first.task_id and created(dashscope_emulator) == 1
    assert any(e.kind == "attached" and e.data["why"] == "adopted" for e in events)
    assert get_journal(config).get(first.id).state == "succeeded"
    with pytest.raises(Cancelled):
        await first.wait()
    assert get_journal(config).get(first.id).state == "succeeded"


@pytest.mark.dashscope_emulator(render_mode="still")
@pytest.mark.parametrize("sent", [False, True])
async def test_an_orphan_whose_create_never_made_a_task_is_submitted_by_the_adopter(
    dashscope_emulator, wide_photo, tmp_path, sent
):
    """Item 4/5: the dead owner never sent its create (`sent_at` is None), or sent it and the
    task list proves no task came of it: the adopter submits (once) and delivers, instead of
    failing with "generate again"."""
    import time

    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator, request_timeout=2.0)  # the settle time
    key = reelgen.request_key(request(wide_photo), provider, config=config)
    orphan = _dead_orphan(provider, key, sent_at=time.time() if sent else None)
    get_journal(config).open(orphan)
    events = []
    result = await reelgen.agenerate(request(wide_photo), provider, config=config, on_event=events.append)
    assert created(dashscope_emulator) == 1 and result.task_id == dashscope_emulator.tasks()[0]["task_id"]
    entry = get_journal(config).get(orphan.id)
    assert entry.state == "succeeded" and entry.task_id == result.task_id
    assert [e.data["why"] for e in events if e.kind == "attached"] == ["adopted"]
    assert dashscope_emulator.counters()["creates"] == 1


@pytest.mark.dashscope_emulator(render_mode="still")
@pytest.mark.parametrize("landed", [True, False], ids=["create-landed", "create-never-landed"])
async def test_the_adopter_of_a_dead_create_holds_its_permit_not_a_second_one(
    dashscope_emulator, wide_photo, tmp_path, landed
):
    """Issue 10: a process killed between its permit and its create's reply left the permit
    unbound. Whoever adopts the entry takes that permit over (the task it found, or the create
    it sends again), so the account is neither one slot short for the dead lease's 120 s nor
    blocked by it; and once the job ends its slot is free."""
    import time

    from reelgen.governor import account_for, get_governor, limits_for

    config = make_config(tmp_path, limits={"bailian_wan": {"concurrency": 1}}, deadline=20)
    provider = provider_for(dashscope_emulator, request_timeout=2.0)  # the settle time
    key = reelgen.request_key(request(wide_photo), provider, config=config)
    orphan = _dead_orphan(provider, key, sent_at=time.time())
    governor, account = get_governor(config), account_for(provider)
    # The dead process's permit: the account (1 slot) is full.
    await governor.acquire(account, limits_for(provider, config), deadline_at=time.monotonic() + 5, entry=orphan.id)
    get_journal(config).open(orphan)
    if landed:
        await provider.submit(request(wide_photo))  # what the dead process had sent
    result = await reelgen.agenerate(request(wide_photo), provider, config=config)
    assert created(dashscope_emulator) == 1 and result.task_id == dashscope_emulator.tasks()[0]["task_id"]
    assert await governor.in_use(account) == 0


@pytest.mark.dashscope_emulator(render_mode="still", query_qps=1)
async def test_a_throttled_poll_backs_off_and_says_why(dashscope_emulator, wide_photo, tmp_path):
    """A poll answered 429 waits before the next look (it used to look again at once) and
    announces the delay and the reason in a `retrying` event."""
    # The governor is told the account allows far more queries than the emulator does.
    config = make_config(tmp_path, limits={"bailian_wan": {"query_rate": 1000}})
    provider = provider_for(dashscope_emulator)
    events = []
    result = await asyncio.wait_for(
        reelgen.agenerate(request(wide_photo), provider, config=config, on_event=events.append), 60
    )
    assert result.bytes > 0
    retries = [e for e in events if e.kind == "retrying" and e.data["step"] == "poll"]
    assert retries, "the emulator's 1 query/s never throttled a poll"
    assert all(e.data["delay"] > 0 and "rate" in e.data["reason"].lower() for e in retries)
    assert dashscope_emulator.counters()["tasks_created"] == 1


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_resuming_a_never_sent_entry_without_its_image_sends_nothing(dashscope_emulator, wide_photo, tmp_path):
    """The journal keeps only the reference image's hash: a resume cannot send the request
    the caller made, so it sends nothing and says to generate again (nothing was billed)."""
    import attrs

    from reelgen.errors import ProviderFailed

    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator)
    key = reelgen.request_key(request(wide_photo), provider, config=config)
    orphan = _dead_orphan(provider, key, sent_at=None)
    orphan = attrs.evolve(orphan, request={**orphan.request, "reference_image": "sha256:" + "0" * 64})
    get_journal(config).open(orphan)
    with pytest.raises(ProviderFailed, match=r"never sent.*generate again"):
        await reelgen.resume(orphan.id, config=config, provider=provider).wait()
    assert dashscope_emulator.counters()["creates"] == 0
    assert get_journal(config).get(orphan.id).state == "failed"


@pytest.mark.dashscope_emulator(render_mode="still", queue_seconds=0, run_seconds=300)
async def test_a_failed_cancel_from_a_follower_leaves_the_live_owner_in_charge(
    dashscope_emulator, wide_photo, tmp_path
):
    """`reelgen jobs cancel ID` of a RUNNING job another live process drives: the provider
    cannot stop it, and the journal entry stays that process's (it is not disowned)."""
    import subprocess
    import sys

    from reelgen.journal import Owner, _process_start

    config = make_config(tmp_path)
    job = await reelgen.submit(request(wide_photo), provider_for(dashscope_emulator), config=config)
    for _ in range(200):
        if (await job.status()).state == "running":
            break
        await asyncio.sleep(0.02)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = Owner(host=Owner.current().host, pid=other.pid, started=_process_start(other.pid))
        journal = get_journal(config)
        journal.update(job.entry_id, owner=owner)  # another live process drives it
        follower = reelgen.resume(job.id, config=config, provider=provider_for(dashscope_emulator))
        assert await follower.cancel() is False
        assert journal.get(job.entry_id).owner == owner
    finally:
        other.kill()
        other.wait()


def _orphan_of_another_request(provider, config, *, sent_at: float):
    """A dead process's entry of another request of this account: sent, never journaled its task."""
    import time

    from reelgen.governor import account_for
    from reelgen.journal import JournalEntry, Owner, new_entry_id

    dead = Owner(host=Owner.current().host, pid=2**22 + 4321, started=1.0)
    orphan = JournalEntry(
        id=new_entry_id(),
        provider="bailian_wan",
        model=provider.capabilities.model,
        key="another request",
        state="submitting",
        account=account_for(provider).id,
        owner=dead,
        submitted_at=sent_at,
        updated_at=time.time(),
        heartbeat=sent_at,
        sent_at=sent_at,
    )
    get_journal(config).open(orphan)
    return orphan


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_a_dead_processs_unjournaled_task_is_not_adopted_as_ours(dashscope_emulator, wide_photo, tmp_path):
    """Item 4: an orphaned `submitting` entry of another request may own the lone candidate
    (its process sent the create and died): our ambiguous create stays `unknown` and shows
    it, instead of delivering the other request's video as ours."""
    import time

    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator)
    _orphan_of_another_request(provider, config, sent_at=time.time())
    theirs = await provider.submit(request(wide_photo, prompt="another request's prompt"))
    dashscope_emulator.script_faults("create_5xx")  # ours is ambiguous and made nothing
    with pytest.raises(SubmissionUnknown) as caught:
        await reelgen.agenerate(request(wide_photo), provider, config=config)
    assert list(caught.value.candidates) == [theirs.task_id] and created(dashscope_emulator) == 1
    assert get_journal(config).get(caught.value.job_id).state == "unknown"


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_an_adopted_task_that_ran_another_prompt_is_not_delivered_as_ours(
    dashscope_emulator, wide_photo, tmp_path
):
    """Item 4: the list shows no prompt, so a lone candidate made elsewhere (no journal saw it)
    is adopted; its SUCCEEDED output echoes `orig_prompt`, which is not ours: the entry goes
    back to `unknown` with the task un-claimed, and nothing is delivered or cached."""
    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator)
    theirs = await provider.submit(request(wide_photo, prompt="made elsewhere, another prompt"))
    dashscope_emulator.script_faults("create_5xx")  # ours is ambiguous and made nothing
    events = []
    with pytest.raises(SubmissionUnknown, match=theirs.task_id) as caught:
        await reelgen.agenerate(request(wide_photo), provider, config=config, on_event=events.append)
    assert any(e.kind == "attached" and e.data["why"] == "adopted" for e in events)
    assert not any(e.kind == "succeeded" for e in events) and created(dashscope_emulator) == 1
    entry = get_journal(config).get(caught.value.job_id)
    assert entry.state == "unknown" and entry.task_id is None and entry.candidates == [theirs.task_id]
    assert get_journal(config).claimed("bailian_wan", [theirs.task_id]) == set()
    assert not list((tmp_path / "videos").rglob("*.mp4"))


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_an_adopted_task_whose_truncated_prompt_is_ours_is_delivered(dashscope_emulator, wide_photo, tmp_path):
    """Item 4: the service truncates a prompt over 1500 characters and echoes it so: still ours."""
    long = request(wide_photo, prompt="a lighthouse in a storm, " * 80)
    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator)
    dashscope_emulator.script_faults("create_reply_reset")
    result = await reelgen.agenerate(long, provider, config=config)
    assert created(dashscope_emulator) == 1 and result.task_id == dashscope_emulator.tasks()[0]["task_id"]


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_a_create_that_lands_after_the_first_empty_list_is_adopted_not_paid_again(
    dashscope_emulator, wide_photo, tmp_path
):
    """Item 4: after an ambiguous create the service may still make the task after we list:
    an empty list proves nothing until the create could no longer land (the read timeout
    and a margin after it was sent); then the late task is found and adopted, not re-paid."""
    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator, request_timeout=2.0)
    dashscope_emulator.script_faults("create_5xx")
    running = asyncio.ensure_future(reelgen.agenerate(request(wide_photo), provider, config=config))
    for _ in range(600):  # bounded: until our create has met its 5xx
        if dashscope_emulator.counters()["creates"] >= 1 or running.done():
            break
        await asyncio.sleep(0.01)
    late = await provider_for(dashscope_emulator).submit(request(wide_photo))  # our create, landing late
    result = await asyncio.wait_for(running, timeout=60)
    assert result.task_id == late.task_id and created(dashscope_emulator) == 1


@pytest.mark.dashscope_emulator(render_mode="still")
async def test_a_job_whose_live_owner_stopped_driving_it_is_adopted(dashscope_emulator, wide_photo, tmp_path):
    """Item 4: the owner's process lives (this one) but nothing drives the job (a handle that
    submitted and never waits): its heartbeat goes stale, and an identical request adopts
    and delivers it instead of following it until the deadline."""
    import time

    from reelgen._jobcore import job_record
    from reelgen.governor import account_for
    from reelgen.journal import STALE_AFTER, JournalEntry, Owner, new_entry_id

    config = make_config(tmp_path, deadline=20)
    provider = provider_for(dashscope_emulator)
    made = await provider.submit(request(wide_photo))
    then = time.time() - STALE_AFTER - 5
    entry = JournalEntry(
        id=new_entry_id(),
        provider="bailian_wan",
        model=provider.capabilities.model,
        key=reelgen.request_key(request(wide_photo), provider, config=config),
        state="queued",
        account=account_for(provider).id,
        owner=Owner.current(),
        submitted_at=then,
        updated_at=then,
        heartbeat=then,
        sent_at=then,
        task_id=made.task_id,
        job=job_record(made),
    )
    get_journal(config).open(entry)
    events = []
    result = await reelgen.agenerate(request(wide_photo), provider, config=config, on_event=events.append)
    assert result.task_id == made.task_id and created(dashscope_emulator) == 1
    assert get_journal(config).get(entry.id).state == "succeeded"
    assert any(e.kind == "attached" and e.data["why"] == "adopted" for e in events)


@pytest.mark.dashscope_emulator(render_mode="still", time_scale=0.01)
async def test_of_several_candidates_the_one_that_echoes_our_prompt_is_adopted(
    dashscope_emulator, wide_photo, tmp_path
):
    """Item 4: a worker killed with two creates in flight leaves two candidates for each of its
    entries; once the tasks end, each echoes its prompt, and exactly one matches ours."""
    provider = provider_for(dashscope_emulator)
    other = await provider.submit(request(wide_photo, prompt="a different shot, made elsewhere"))
    dashscope_emulator.script_faults("create_reply_reset")
    config = make_config(tmp_path)
    result = await reelgen.agenerate(request(wide_photo), provider, config=config)
    assert result.task_id != other.task_id and created(dashscope_emulator) == 2  # nothing paid twice
    entry = get_journal(config).get(f"bailian_wan:{result.task_id}")
    assert entry is not None and entry.state == "succeeded"


@pytest.mark.dashscope_emulator(render_mode="still", faults=Faults(early_expiry=1.0))
async def test_a_url_that_expired_early_is_not_called_valid_in_the_delivery_failure(
    dashscope_emulator, wide_photo, tmp_path
):
    """Item 9: the provider's URL answers 403 before its stated expiry: the error must not say it
    stays valid (the stated time is still in the future), and still name the way to resume."""
    config = make_config(tmp_path)
    with pytest.raises(DeliveryFailed) as caught:
        await reelgen.agenerate(request(wide_photo), provider_for(dashscope_emulator), config=config)
    message = str(caught.value)
    assert "HTTP 403" in message and "no longer answers" in message and "stays valid" not in message
    assert f"reelgen jobs resume {caught.value.job_id}" in message
    assert get_journal(config).get(caught.value.job_id).state == "delivery_failed"


@pytest.mark.dashscope_emulator(render_mode="still", time_scale=0.01)
async def test_an_adopted_task_is_still_checked_by_the_process_that_resumes_it(
    dashscope_emulator, wide_photo, tmp_path
):
    """Item 4: the task an entry adopted from the task list is checked against the request's
    prompt before delivery, also when another process (after a crash) resumes the entry."""
    import time

    from reelgen._jobcore import job_record
    from reelgen.governor import account_for
    from reelgen.journal import JournalEntry, new_entry_id

    config = make_config(tmp_path)
    provider = provider_for(dashscope_emulator)
    theirs = await provider.submit(request(wide_photo, prompt="somebody else's shot"))
    now = time.time()
    ours = request(wide_photo)
    entry = JournalEntry(
        id=new_entry_id(),
        provider="bailian_wan",
        model=provider.capabilities.model,
        key=reelgen.request_key(ours, provider),
        state="queued",
        request={"prompt": ours.prompt},
        account=account_for(provider).id,
        submitted_at=now,
        sent_at=now,
        updated_at=now,
        heartbeat=now,
        task_id=theirs.task_id,
        job=job_record(theirs),
        adopted=True,  # as a process that died after adopting it left it
    )
    journal = get_journal(config)
    journal.open(entry)
    with pytest.raises(SubmissionUnknown, match="ran another prompt"):
        await reelgen.resume(entry.id, config=config, provider=provider_for(dashscope_emulator)).wait()
    assert get_journal(config).get(entry.id).state == "unknown" and not list((tmp_path / "videos").glob("*.mp4"))
