"""Jobs this process did not create: follow another live process's job, adopt an orphan, recover.

A job another live process drives is *followed* through the journal (its entry is
looked at every `_FOLLOW_EVERY` seconds) until it ends or its owner goes; then it is
*adopted* (a compare-and-set of the owner: exactly one adopter wins) and *recovered*
from where the journal says it is: polled if it has a task, delivered if it was paid,
reconciled through the task list if its create may have made one. Never re-submitted
unless the journal or the task list proves no task was created.
"""

from __future__ import annotations

import asyncio
import time

from ._creating import reconcile
from ._delivery import resume_hint
from ._jobcore import JobCore, job_from_record
from .contract import VideoResult
from .errors import Cancelled, DeliveryFailed, GenerationTimeout, ProviderFailed, ReelgenError, SubmissionUnknown
from .journal import JournalEntry, JournalError

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
        if entry.orphaned():
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
        await job._journal_update(owner=job._owner, heartbeat=time.time(), error=None)
        if entry.state in ("delivering", "delivery_failed"):
            job.emit("attached", job_id=entry.ref, why="delivery")
        return
    # No task id: the owner died during the create, or the reply was lost.
    if await reconcile(job) == "absent":
        error = (
            f"job {entry.ref}: {job.provider.name}'s task list shows no task for it, so nothing was created "
            "or billed; generate again"
        )
        await job._journal_update(state="failed", error=error, finished_at=time.time())
        raise ProviderFailed(error, provider=job.provider.name)


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
