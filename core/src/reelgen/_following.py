"""Jobs this process did not create: follow another live process's job, adopt an orphan, recover.

A job another live process drives is *followed* through the journal (its entry is
looked at every `_FOLLOW_EVERY` seconds) until it ends or its owner goes or stops driving
it (its heartbeat, refreshed while it drives, goes stale); then it is
*adopted* (a compare-and-set of the owner: exactly one adopter wins) and *recovered*
from where the journal says it is: polled if it has a task, delivered if it was paid,
reconciled through the task list if its create may have made one. Its create is sent
only where that is proved not to pay twice: the journal shows it was never sent
(`sent_at` is None), or the task list shows it made no task.
"""

from __future__ import annotations

import asyncio
import time

from ._creating import reconcile, start
from ._delivery import resume_hint
from ._jobcore import JobCore, job_from_record
from .contract import VideoResult
from .errors import Cancelled, DeliveryFailed, GenerationTimeout, ProviderFailed, ReelgenError, SubmissionUnknown
from .journal import STALE_AFTER, JournalEntry, JournalError

__all__ = ["entry_error", "follow", "recover"]

#: How often a follower looks at the journal.
_FOLLOW_EVERY = 0.5


async def follow(job: JobCore) -> VideoResult | None:
    """Wait on a job another live process drives; adopt it if that process goes (then None)."""
    assert job._journal is not None and job._entry is not None
    seen = job._entry.state
    while True:
        entry = await asyncio.to_thread(job._journal.get, job._entry.id)
        if entry is None:
            raise JournalError(f"job {job.id} vanished from the journal {job._journal.location}")
        job._entry = entry
        if entry.state != seen:
            seen = entry.state
            job.emit("status", state=entry.state, raw_status=entry.state.upper(), message=None)
        if entry.state == "succeeded" and entry.result is not None:
            return entry.result
        if not entry.active:
            raise entry_error(entry, job.provider.name)
        if entry.orphaned() or _idle(entry):
            adopted = await asyncio.to_thread(job._journal.adopt, entry.id, entry.owner, job._owner)
            if adopted is not None:
                job._entry = adopted
                job._mode = "recover"
                job.emit("attached", job_id=adopted.ref, why="adopted")
                return None
            continue
        remaining = job._remaining()
        if remaining <= 0:
            raise GenerationTimeout(
                f"job {entry.ref} (driven by another process) did not finish before the deadline; it goes on: "
                f"`{resume_hint(entry.ref)}` picks it up",
                job_id=entry.ref,
            )
        await job._sleep(min(_FOLLOW_EVERY, remaining))


async def recover(job: JobCore) -> None:
    """Pick up an adopted or resumed entry where its journal says it is."""
    entry = job._entry
    assert entry is not None
    if entry.state == "succeeded" and entry.result is not None:
        job._result = entry.result
        return
    if entry.terminal:
        raise entry_error(entry, job.provider.name)
    if entry.job is not None:
        job.provider_job = job_from_record(entry.job)
        job._adopted = entry.adopted  # taken from the task list: its prompt is still to be checked
        await job._journal_update(owner=job._owner, heartbeat=time.time(), error=None)
        if entry.state in ("delivering", "delivery_failed"):
            job.emit("attached", job_id=entry.ref, why="delivery")
        return
    # No task id: the owner died before or during the create, or the create's reply was lost.
    # `sent_at` is journaled before each create is sent, so without it nothing was sent; with
    # it, only the task list can prove that nothing was created. Either proof: send it now.
    if entry.sent_at is not None and await reconcile(job) != "absent":
        return  # adopted the task the create made (or `reconcile` raised: unknown)
    if not _whole_request(job, entry):
        what = "its create was never sent" if entry.sent_at is None else "the task list shows no task for it"
        error = (
            f"job {entry.ref}: {what}, so nothing was created or billed; its request (its reference image) is "
            "not in the journal: generate again"
        )
        await job._journal_update(state="failed", error=error, finished_at=time.time())
        raise ProviderFailed(error, provider=job.provider.name)
    job.register()
    await start(job)


def _idle(entry: JournalEntry) -> bool:
    """Is nobody driving the entry? Its owner beats while it drives (creates, polls,
    delivers); a stale beat means it stopped, even if its process lives (a handle that
    submitted and never waits, a second handle resumed in the same process)."""
    return time.time() - entry.heartbeat >= STALE_AFTER


def _whole_request(job: JobCore, entry: JournalEntry) -> bool:
    """Does this handle hold the entry's whole request, so that sending it pays for what was asked?
    The caller's own request does (its image read at the gate); one rebuilt from the journal
    only when it had no reference image (the journal keeps just the image's hash)."""
    request = job.request
    if request is None or job.key != entry.key:
        return False
    if request.reference_image is not None:
        return True
    from ._cachekey import cache_key

    return cache_key(request, provider=job.provider.name, model=entry.model) == entry.key


def entry_error(entry: JournalEntry, provider: str) -> ReelgenError:
    """The error a follower raises for a job that ended elsewhere without a video."""
    ref = entry.ref
    if entry.state == "cancelled":
        return Cancelled(f"job {ref} was cancelled", job_id=ref, remote_cancelled=True)
    if entry.state == "delivery_failed":
        return DeliveryFailed(
            f"job {ref} finished but its video is not stored yet ({entry.error}): `{resume_hint(ref)}` finishes it",
            job_id=ref,
        )
    if entry.state == "unknown":
        error = SubmissionUnknown(
            f"the create call for job {ref} ended ambiguously ({entry.error}); a billed task may exist: run "
            f"`{resume_hint(ref)}` to reconcile it, or submit again with --force (force=True) to pay for a new task",
            provider=provider,
        )
        error.job_id = ref
        error.candidates = tuple(entry.candidates)
        return error
    return ProviderFailed(entry.error or f"job {ref} failed", provider=provider, task_id=entry.task_id)
