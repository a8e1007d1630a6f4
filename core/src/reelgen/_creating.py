"""Creating a job's task: the permit, the journaled create, and reconciling an ambiguous create.

The entry is journaled `submitting` before anything is sent, and `sent_at` is written
(loudly: no entry, no create) before each create. A failed create is retried only where
the provider proves no task was made (a 429, a refusal before sending); an ambiguous one
(a lost reply, 408, 5xx) is reconciled through the provider's task list: exactly one
unclaimed candidate is adopted, an empty list proves absence, anything else leaves the
entry `unknown` with its candidates, for `reelgen jobs resume`. An empty list is proof
only once the create can no longer land (`create_settle_seconds` after it was sent), and a
task adopted from the list is checked against the request's prompt where the provider
echoes it (`ProviderOutput.prompt`) before it is delivered as ours.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Literal

from ._delivery import resume_hint
from ._jobcore import JobCore, counted, job_record
from ._polling import interrupted
from ._retry import backoff_delay
from .contract import VideoRequest
from .errors import (
    GenerationTimeout,
    PluginError,
    ProviderError,
    RateLimited,
    ReelgenError,
    SubmissionUnknown,
    TransientError,
)
from .governor import refused_ahead
from .provider import ProviderJob, ProviderOutput

__all__ = ["created", "reconcile", "start"]

log = logging.getLogger("reelgen.jobs")

_SUBMIT_ATTEMPTS = 8
#: How far beyond the create's own time span the provider's task list is searched (clock skew).
_RECONCILE_SKEW = 5.0
#: Looks at the task list while other creates of the account may still name their tasks.
_RECONCILE_LOOKS = 4
#: After a lost reply the create may still land; for this long after `sent_at` (when the
#: provider does not say, via `create_settle_seconds`) an empty list proves nothing.
_DEFAULT_SETTLE = 60.0


async def start(job: JobCore) -> None:
    """Send the create (the entry is already journaled as `submitting`)."""
    assert job.request is not None
    # Waiting for a slot or a token can take minutes: keep the entry's heartbeat fresh
    # meanwhile, so no other host takes this live job for an orphan.
    beating = asyncio.ensure_future(job._beat())
    try:
        governor, account, limits = job._governor()
        entry = job._entry.id if job._entry is not None else None
        while True:
            job._permit = await governor.acquire(
                account, limits, deadline_at=job._deadline_at, on_wait=job._on_wait, entry=entry
            )
            # Permits beyond `concurrency` are handed out (`queue_ahead`): this create may be one
            # to wait at the provider, and a 429 says the account refuses those.
            ahead = limits.permits(account) != limits.concurrency
            try:
                await _create(job, governor, account, limits, ahead=ahead)
                break
            except _RefusedAhead:  # the account does not queue: wait for a real slot instead
                await job._permit.release()
                job._permit = None
    except BaseException as exc:
        beating.cancel()
        job._unregister()
        if isinstance(exc, asyncio.CancelledError) and job.provider_job is not None:
            await asyncio.shield(interrupted(job))  # interrupted right after the create
        await asyncio.shield(job._release(terminal=False))
        if isinstance(exc, GenerationTimeout) and job.provider_job is None:
            await job._journal_update(state="failed", error=str(exc), finished_at=time.time())
        raise
    beating.cancel()
    assert job.provider_job is not None
    if job._permit is not None:
        await job._permit.bind(job.provider_job.id)
    job.emit("submitted", task_id=job.provider_job.task_id, seed=job.provider_job.seed)


async def _create(job: JobCore, governor: Any, account: Any, limits: Any, *, ahead: bool) -> None:
    """The create, retried while the provider proves it made nothing. `ahead`: the permit may
    be one of `queue_ahead`, so a 429 means the account refuses tasks created ahead."""
    assert job.request is not None
    for attempt in range(1, _SUBMIT_ATTEMPTS + 1):
        if job._remaining() <= 0:
            raise job._too_late("while waiting to submit")
        token = await governor.throttle(account, limits, "submit", deadline_at=job._deadline_at, on_wait=job._on_wait)
        if job._remaining() <= 0:
            raise job._too_late("while waiting to submit")
        try:
            job._sent_at = time.time()
            await job._journal_update(loud=True, sent_at=job._sent_at, heartbeat=job._sent_at)
            made = await counted(token, job.provider.submit(job.request))
        except asyncio.CancelledError:
            # Interrupted mid-create: a task may exist (the provider cancels such orphans
            # where it can); reconcile before anyone pays for this request again.
            await asyncio.shield(
                job._journal_update(state="unknown", error="interrupted while the create was in flight")
            )
            raise
        except (SubmissionUnknown, TransientError) as exc:
            if ahead and isinstance(exc, RateLimited):
                refused_ahead(account, exc)
                raise _RefusedAhead from exc
            if _proved_not_created(exc):
                delay = backoff_delay(attempt, base=1.0, cap=30.0, hint=getattr(exc, "retry_after", None))
            elif await reconcile(job, ambiguous=exc) == "adopted":
                return
            else:  # the provider's task list proves that no task was created
                delay = backoff_delay(attempt, base=1.0, cap=30.0)
            if attempt == _SUBMIT_ATTEMPTS or delay >= job._remaining():
                await job._journal_update(state="failed", error=f"{exc} (no task was created)", finished_at=time.time())
                if job._remaining() <= delay:
                    raise GenerationTimeout(
                        f"could not submit to {job.provider.name} before the deadline: {exc}; no task was created",
                        job_id=None,
                    ) from exc
                raise
            kind = "throttled" if isinstance(exc, RateLimited) else "failed without creating a task"
            log.info("submit to %s %s (%s); retrying in %.1fs", job.provider.name, kind, exc, delay)
            job.emit("retrying", step="submit", attempt=attempt, delay=delay, reason=str(exc))
            await job._sleep(delay)
            continue
        except ReelgenError as exc:
            await job._journal_update(state="failed", error=str(exc), finished_at=time.time())
            raise
        await created(job, made)
        return


async def created(job: JobCore, made: ProviderJob) -> None:
    """The provider named the task: journal it (loudly: a paid job must be findable)."""
    job.provider_job = made
    record = job_record(made)
    problem = None
    try:
        json.dumps(record, allow_nan=False)
    except (TypeError, ValueError) as exc:
        problem = exc
        record = {**record, "data": {}}
    try:
        await job._journal_update(loud=True, state="queued", task_id=made.task_id, job=record, heartbeat=time.time())
    except Exception as exc:  # noqa: BLE001 - the job is paid: go on, the entry is reconciled later
        log.error("task %s was created but could not be journaled: %s", made.id, exc)
    if problem is not None:
        await job._let_go(f"the provider's job data is not JSON ({problem})")
        raise PluginError(
            f"provider {job.provider.name} returned job data that is not JSON ({problem}); task {made.id} "
            f"was created and is journaled without it, so it may not be resumable: fix the provider"
        )


class _RefusedAhead(Exception):
    """A create made ahead of a free slot was refused (429): nothing was created."""


def _proved_not_created(exc: BaseException) -> bool:
    """Did the provider prove that the failed create made no task? 429 and "never sent" do;
    a lost reply, 408 and 5xx do not (the task list decides)."""
    if isinstance(exc, SubmissionUnknown):
        return False
    if isinstance(exc, RateLimited):
        return True
    status = getattr(exc, "status_code", None)
    return status is None or not (status == 408 or status >= 500)


# -- reconciling an ambiguous create -------------------------------------------------


def _matching_request(job: JobCore) -> VideoRequest | None:
    if job.request is not None:
        return job.request
    if job._entry is None:
        return None
    from .serialization import structure

    data = {k: v for k, v in job._entry.request.items() if k != "reference_image"}
    try:
        return structure(data, VideoRequest)
    except ReelgenError:
        return None


async def reconcile(job: JobCore, *, ambiguous: BaseException | None = None) -> Literal["adopted", "absent"]:
    """Look for the task an ambiguous create may have made. Adopt exactly one unclaimed
    match; `absent` when the task list proves there is none; else the entry stays
    `unknown` and `SubmissionUnknown` names it and the candidates.

    The list shows no prompt, so a task another generation of this account created in
    the same window, and has not journaled yet, would look like ours: while other
    creates of the account are in flight, the lone candidate is not adopted until they
    have named their tasks (a few looks, a second apart), else the entry stays unknown."""
    entry = job._entry
    finder = getattr(job.provider, "find_jobs", None)
    request = _matching_request(job)
    found: list[ProviderJob] | None = None
    free: list[ProviderJob] = []
    sent = job._sent_at or (entry.sent_at if entry is not None else None)
    look = 0
    while look < _RECONCILE_LOOKS:
        look += 1
        found = await _list_candidates(job, finder, request)
        if found is None:
            break
        claimed: set[str] = set()
        if job._journal is not None:
            claimed = await asyncio.to_thread(job._journal.claimed, job.provider.name, [j.task_id for j in found])
        free = [j for j in found if j.task_id not in claimed]
        if not free:
            # After a lost reply the service may still make the task after we listed: an
            # empty list proves absence only once the create can no longer land.
            unsettled = 0.0 if sent is None else sent + _settle_seconds(job) - time.time()
            if unsettled <= 0:
                return "absent"
            if unsettled >= job._remaining():
                found = None  # cannot wait that long: leave it unknown
                break
            log.info(
                "%s's task list is empty; listing again in %.1fs, once a late create would show", job.id, unsettled
            )
            await job._sleep(unsettled)
            look -= 1
            continue
        if len(free) == 1 and not await _others_creating(job):
            await _adopt(job, free[0])
            return "adopted"
        if len(free) > 1 or look == _RECONCILE_LOOKS:
            # Several tasks could be ours (e.g. a worker killed with two creates in flight):
            # the one that echoes this request's prompt once it has ended is, if it is alone.
            match = await _match_by_prompt(job, free, request)
            if match is not None:
                await _adopt(job, match)
                return "adopted"
            break
        await job._sleep(min(1.0, max(0.0, job._remaining())))
    candidates = [j.task_id for j in free]
    why = str(ambiguous) if ambiguous is not None else (entry.error if entry is not None else None)
    await job._journal_update(state="unknown", error=why, candidates=candidates)
    raise _unknown_error(job, candidates, listed=found is not None, why=why)


async def _adopt(job: JobCore, task: ProviderJob) -> None:
    job._adopted = True
    await created(job, task)
    await job._journal_update(adopted=True)
    job.emit("attached", job_id=task.id, why="adopted")


async def _match_by_prompt(job: JobCore, free: list[ProviderJob], request: VideoRequest | None) -> ProviderJob | None:
    """The one candidate whose echoed prompt is this request's, once every candidate has ended.

    None when that cannot be told: no prompt, no time left, a candidate that ended without
    echoing its prompt (it could be ours), two that echo ours, or another journaled create
    of the same prompt in flight (its task would echo the same)."""
    if request is None or not request.prompt or job._remaining() <= 0:
        return None
    expected = _as_received(job, request.prompt).strip()
    if await _others_creating(job, prompt=request.prompt):
        return None
    pending = list(free)
    matches: list[ProviderJob] = []
    attempt = 0
    log.info("%s: %d tasks could be its; telling them apart by their prompts once they end", job.id, len(free))
    while pending:
        still: list[ProviderJob] = []
        for candidate in pending:
            try:
                token = await job._throttle_query()
                status = await counted(
                    token, asyncio.wait_for(job.provider.poll(candidate), timeout=max(0.001, job._remaining()))
                )
            except (ProviderError, GenerationTimeout, asyncio.TimeoutError) as exc:
                log.info("could not look at candidate %s for %s: %s", candidate.task_id, job.id, exc)
                return None
            if not status.terminal:
                still.append(candidate)
                continue
            echoed = status.output.prompt if status.output is not None else None
            if echoed is None:
                if status.state == "succeeded":
                    return None  # a video without its prompt: it could be ours
                continue  # failed or cancelled: nothing to deliver
            if echoed.strip() == expected:
                matches.append(candidate)
        if len(matches) > 1:
            return None
        pending = still
        if pending:
            first = pending[0]
            delay = float(job.provider.poll_delay(first, attempt, time.time() - first.submitted_at))
            if delay >= job._remaining():
                return None
            await job._sleep(max(0.05, delay))
            attempt += 1
    if len(matches) != 1:
        return None
    claimed: set[str] = set()
    if job._journal is not None:  # another entry may have named it meanwhile
        claimed = await asyncio.to_thread(job._journal.claimed, job.provider.name, [matches[0].task_id])
    return None if claimed else matches[0]


async def _list_candidates(job: JobCore, finder: Any, request: VideoRequest | None) -> list[ProviderJob] | None:
    entry = job._entry
    if finder is None or request is None or entry is None:
        return None
    if job._remaining() <= 0:
        log.warning("no time left before the deadline to list %s's tasks for %s", job.provider.name, job.id)
        return None
    try:
        since = job._sent_at or entry.sent_at or entry.submitted_at
        token = await job._throttle_query()
        # Bounded by the deadline too, not only by the provider's own request timeout.
        listing = finder(request, since=since - _RECONCILE_SKEW, until=time.time() + _RECONCILE_SKEW)
        found: list[ProviderJob] | None = await counted(
            token, asyncio.wait_for(listing, timeout=max(0.001, job._remaining()))
        )
    except asyncio.TimeoutError:
        log.warning("%s's task list did not answer before the deadline (reconciling %s)", job.provider.name, job.id)
        return None
    except (ProviderError, GenerationTimeout) as exc:
        log.warning("could not list %s's tasks to reconcile %s: %s", job.provider.name, job.id, exc)
        return None
    return found


async def _others_creating(job: JobCore, *, prompt: str | None = None) -> bool:
    """Could another entry of this account own a task of the listed window?

    Every `submitting` or `unknown` entry that sent its create in the window counts,
    orphaned or not: a dead process's sent-but-never-journaled task is exactly the
    ambiguous kind, and adopting it would deliver another request's video as ours.
    With `prompt`, only entries of that same prompt count (their tasks would echo it)."""
    if job._journal is None or job._entry is None:
        return False
    mine = job._entry
    since = (job._sent_at or mine.sent_at or mine.submitted_at) - _RECONCILE_SKEW - _settle_seconds(job)
    entries = await asyncio.to_thread(job._journal.list, states=["submitting", "unknown"], limit=1000)
    return any(
        other.id != mine.id
        and other.sent_at is not None
        and other.sent_at >= since
        and other.provider == mine.provider
        and other.account == mine.account
        and not other.task_id
        and (prompt is None or other.request.get("prompt") == prompt)
        for other in entries
    )


def _settle_seconds(job: JobCore) -> float:
    """How long after sending a create its task can still appear (the provider says, else 60 s)."""
    value = getattr(job.provider, "create_settle_seconds", None)
    return float(value) if isinstance(value, (int, float)) and value >= 0 else _DEFAULT_SETTLE


async def verify_adopted(job: JobCore, output: ProviderOutput) -> None:
    """An adopted task whose echoed prompt is not the request's is another request's
    video: put the entry back to `unknown` (the task un-claimed, shown as a candidate)
    and raise `SubmissionUnknown` naming it, instead of delivering it as ours."""
    request = _matching_request(job)
    pj = job.provider_job
    if not job._adopted or output.prompt is None or request is None or pj is None:
        return
    expected = _as_received(job, request.prompt or "")
    if output.prompt.strip() == expected.strip():
        return
    why = (
        f"task {pj.task_id}, adopted from {job.provider.name}'s task list, ran another prompt "
        f"({output.prompt[:60]!r}...), so it is not this request's video"
    )
    log.warning("%s: %s", job.id, why)
    job._adopted = False
    job.provider_job = None
    await job._journal_update(
        loud=True, state="unknown", task_id=None, job=None, error=why, candidates=[pj.task_id], adopted=False
    )
    raise _unknown_error(job, [pj.task_id], listed=True, why=why)


def _as_received(job: JobCore, prompt: str) -> str:
    """The prompt as the provider received it: cut where it truncates overlong prompts."""
    caps = getattr(job.provider, "capabilities", None)
    limit = getattr(caps, "prompt_max_chars", None)
    if isinstance(limit, int) and getattr(caps, "prompt_overflow", None) == "truncate":
        return prompt[:limit]
    return prompt


def _unknown_error(job: JobCore, candidates: list[str], *, listed: bool, why: str | None) -> SubmissionUnknown:
    ref = job._entry.ref if job._entry is not None else None
    if not listed:
        found = f"{job.provider.name} cannot list its tasks here, so it cannot be checked"
    elif candidates:
        found = f"{len(candidates)} of {job.provider.name}'s tasks could be it: {', '.join(candidates)}"
    else:
        found = "no matching task was found"
    error = SubmissionUnknown(
        f"the create call for job {ref} ended ambiguously ({why}); a billed task may exist and {found}. "
        f"It is journaled as `unknown`: run `{resume_hint(ref)}` to reconcile it, or submit again with "
        "--force (force=True) to pay for a new task",
        provider=job.provider.name,
    )
    error.job_id = ref
    error.candidates = tuple(candidates)
    return error
