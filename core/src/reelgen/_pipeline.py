"""`video.generate`: the gate, the cache, the journal, then the job.

```
gate (deadline, options, image read once, capabilities, provider, warnings emitted)
  -> cache lookup (use_cache) -> in-process single-flight -> storage check
  -> journal entry `submitting` (single-flight across processes; an `unknown` blocks)
  -> Job.start(): governor permit, create (journaled) -> Job.wait(): poll -> deliver
```

Nothing is sent to a provider before everything that can be checked locally was
checked and the journal holds an entry for it: a paid job can always be found again.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import attrs

from . import _hooks
from ._cachekey import cache_key
from ._registry import get_provider, provider_for_account
from .config import Config, load_config
from .contract import VideoRequest, VideoResult, with_provider_defaults
from .errors import ValidationError
from .images import ImageData, image_key, resolve_image
from .jobs import EventCallback, Job, in_flight, job_from_record, job_record
from .journal import Journal, JournalEntry, Owner, get_journal, is_entry_id, new_entry_id, parse_job_id, validate_ref
from .pricing import estimate
from .provider import Provider, ProviderJob
from .validation import check_option_namespaces, check_request, enforce_strict

__all__ = ["agenerate", "generate", "request_key", "resume", "submit", "validate"]


def _provider(provider: str | Provider | None, config: Config) -> Provider:
    if provider is None or isinstance(provider, str):
        return get_provider(provider, config=config)
    return provider


def _seconds(name: str, value: Any) -> float:
    """A deadline or timeout: a finite number of seconds greater than 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValidationError(f"{name} must be a finite number of seconds greater than 0, got {value!r}", field=name)
    return float(value)


@attrs.frozen(kw_only=True)
class _Gate:
    """A request that passed the gate: what is sent, what it is keyed by, what to warn about."""

    request: VideoRequest
    image: ImageData | None
    digest: str | None
    key: str
    warnings: list[str]


def _installed() -> set[str]:
    from .plugins import provider_entries

    return set(provider_entries())


def _gate(request: VideoRequest, provider: Provider, strict: bool) -> _Gate:
    """Everything checked offline, the reference image read exactly once."""
    check_option_namespaces(request, provider.name, _installed())
    request = with_provider_defaults(request, provider.capabilities)
    image = resolve_image(request.reference_image, provider.capabilities, provider=provider.name)
    if image is not None:
        # The bytes checked and hashed are the bytes sent: the provider never re-reads the file.
        request = attrs.evolve(request, reference_image=image.content)
    digest = ("sha256:" + image.sha256) if image is not None else None
    if request.reference_image is not None and digest is None:
        digest = image_key(request.reference_image)  # a remote URL: keyed by the URL itself
    warnings = check_request(request, provider.capabilities, provider=provider.name, image=image)
    warnings += provider.validate(request)
    warnings = list(dict.fromkeys(warnings))
    enforce_strict(warnings, strict)
    key = cache_key(request, provider=provider.name, model=provider.capabilities.model, image_digest=digest)
    return _Gate(request=request, image=image, digest=digest, key=key, warnings=warnings)


def validate(
    request: VideoRequest, provider: str | Provider | None = None, *, config: Config | None = None, strict: bool = False
) -> list[str]:
    """Check `request` against the provider, offline. Returns warnings; raises `ValidationError`."""
    config = config or load_config()
    return _gate(request, _provider(provider, config), strict).warnings


def request_key(request: VideoRequest, provider: str | Provider | None = None, *, config: Config | None = None) -> str:
    """The cache key `request` has with this provider (see `reelgen._cachekey`)."""
    config = config or load_config()
    chosen = _provider(provider, config)
    # As the gate does: the provider's defaults for omitted fields, the image's content hash.
    request = with_provider_defaults(request, chosen.capabilities)
    return cache_key(request, provider=chosen.name, model=chosen.capabilities.model)


def _deadlines(config: Config, deadline: float | None, queue_timeout: float | None) -> tuple[float, float | None]:
    total = _seconds("deadline", deadline if deadline is not None else config.deadline)
    queued = queue_timeout if queue_timeout is not None else config.queue_timeout
    return time.monotonic() + total, (_seconds("queue_timeout", queued) if queued is not None else None)


async def submit(
    request: VideoRequest,
    provider: str | Provider | None = None,
    *,
    config: Config | None = None,
    strict: bool = False,
    use_cache: bool = True,
    on_event: EventCallback | None = None,
    deadline: float | None = None,
    queue_timeout: float | None = None,
    force: bool = False,
) -> Job:
    """Validate and start a generation; return its `Job` (already done on a cache hit).

    `use_cache=False` asks for a new take: the cache is neither read nor written and the
    job is not shared. `force=True` submits even while an earlier identical request's
    create ended ambiguously (`unknown` in the journal). `queue_timeout` bounds the time
    the job may wait at the provider before it runs.
    """
    config = config or load_config()
    deadline_at, queued = _deadlines(config, deadline, queue_timeout)
    chosen = _provider(provider, config)
    gate = await asyncio.to_thread(_gate, request, chosen, strict)
    common: dict[str, Any] = {
        "provider": chosen,
        "config": config,
        "request": gate.request,
        "key": gate.key,
        "warnings": gate.warnings,
        "deadline_at": deadline_at,
        "on_event": on_event,
        "use_cache": use_cache,
        "queue_timeout": queued,
    }
    herald = Job(**common)
    for warning in gate.warnings:
        herald.emit("warning", message=warning)
    if use_cache and config.cache.enabled:
        cached = await _hooks.call_first("reelgen_cache_get", key=gate.key, request=gate.request, config=config)
        if cached is not None:
            job = Job(result=cached, **common)
            job.emit("cache_hit", key=gate.key, video_url=cached.video_url)
            return job
    if use_cache:
        leader = in_flight(gate.key)
        if leader is not None:
            return leader.attach(on_event, why="single-flight")
    cost = estimate(gate.request, chosen, config)
    if cost is not None:
        herald.emit("estimate", amount=cost.amount, currency=cost.currency, basis=cost.basis)
    journal = await asyncio.to_thread(get_journal, config)
    await _hooks.call_all("reelgen_check_storage", config=config)
    now = time.time()
    entry = JournalEntry(
        id=new_entry_id(),
        provider=chosen.name,
        model=chosen.capabilities.model,
        key=gate.key,
        state="submitting",
        request=_sanitized(gate),
        account=_account_id(chosen),
        shared=use_cache,
        submitted_at=now,
        updated_at=now,
        owner=Owner.current(),
        heartbeat=now,
    )
    if journal is not None:
        # Loud: no entry, no payment.
        opened = await asyncio.to_thread(journal.open, entry, force=force)
        if not opened.created:
            return _join(opened.entry, journal, common, on_event)
        entry = opened.entry
    job = Job(journal=journal, entry=entry if journal is not None else None, **common)
    if journal is not None:
        job.emit("journaled", entry_id=entry.id)
    job.register()
    await job.begin()
    return job


def _sanitized(gate: _Gate) -> dict[str, Any]:
    from ._store import sanitized_request

    return sanitized_request(gate.request, gate.digest)


def _account_id(provider: Provider) -> str:
    from .governor import account_for

    return account_for(provider).id


def _join(existing: JournalEntry, journal: Journal, common: dict[str, Any], on_event: EventCallback | None) -> Job:
    """An identical request is in flight (or unresolved): follow it, adopt it, or refuse."""
    job = Job(journal=journal, entry=existing, mode="follow", **common)
    if existing.state == "unknown":
        from ._following import entry_error

        raise entry_error(existing, existing.provider)
    if existing.orphaned():
        adopted = journal.adopt(existing.id, existing.owner, Owner.current())
        if adopted is not None:
            job = Job(journal=journal, entry=adopted, mode="recover", **common)
            job.emit("attached", job_id=adopted.ref, why="adopted")
            return job
    job.emit("attached", job_id=existing.ref, why="single-flight")
    return job


async def agenerate(
    request: VideoRequest,
    provider: str | Provider | None = None,
    *,
    config: Config | None = None,
    strict: bool = False,
    use_cache: bool = True,
    on_event: EventCallback | None = None,
    deadline: float | None = None,
    queue_timeout: float | None = None,
    force: bool = False,
) -> VideoResult:
    """Generate one video and return the stored, measured result."""
    job = await submit(
        request,
        provider,
        config=config,
        strict=strict,
        use_cache=use_cache,
        on_event=on_event,
        deadline=deadline,
        queue_timeout=queue_timeout,
        force=force,
    )
    return await job.wait()


def generate(
    request: VideoRequest,
    provider: str | Provider | None = None,
    *,
    config: Config | None = None,
    strict: bool = False,
    use_cache: bool = True,
    on_event: EventCallback | None = None,
    deadline: float | None = None,
    queue_timeout: float | None = None,
    force: bool = False,
) -> VideoResult:
    """The synchronous twin of `agenerate` (not for use inside a running event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("reelgen.generate() cannot run inside an event loop: use `await reelgen.agenerate(...)`")
    return asyncio.run(
        agenerate(
            request,
            provider,
            config=config,
            strict=strict,
            use_cache=use_cache,
            on_event=on_event,
            deadline=deadline,
            queue_timeout=queue_timeout,
            force=force,
        )
    )


def _request_from(entry: JournalEntry) -> VideoRequest | None:
    """The journaled request without its image (only the image's hash is kept; the cache key
    comes from the journal, never re-derived from that placeholder)."""
    from .errors import ReelgenError
    from .serialization import structure

    data = {name: value for name, value in entry.request.items() if name != "reference_image"}
    try:
        return structure(data, VideoRequest)
    except ReelgenError:
        return None


def resume(
    job_id: str,
    *,
    config: Config | None = None,
    provider: Provider | None = None,
    on_event: EventCallback | None = None,
    deadline: float | None = None,
    queue_timeout: float | None = None,
) -> Job:
    """The job `job_id` (`provider:task_id`, or a journal entry id `j-...`), from any process.

    What the journal knows (the request, the cache key, whether the take is cached) is
    picked up, so the result is cached and checked as if it had never been interrupted;
    an `unknown` entry is reconciled through the provider's task list, a
    `delivery_failed` one finishes its delivery. A job the journal does not know is
    journaled from then on, polled, downloaded and stored (never cached: its request is
    unknown). A job another live process drives is followed.
    """
    validate_ref(job_id)
    config = config or load_config()
    deadline_at, queued = _deadlines(config, deadline, queue_timeout)
    journal = get_journal(config)
    entry = journal.get(job_id) if journal is not None else None
    if entry is None:
        if is_entry_id(job_id):
            where = journal.location if journal is not None else "nowhere (jobs.url is off)"
            raise ValidationError(f"no job {job_id} in the journal {where}", field="job_id")
        name, task_id = parse_job_id(job_id)
        chosen = provider or get_provider(name, config=config)
        _same_provider(job_id, name, chosen)
        bare = ProviderJob(provider=name, model=chosen.capabilities.model, task_id=task_id, submitted_at=time.time())
        known = None
        if journal is not None:
            # Journaled from now on (not shared, not cached: its request is unknown), so it
            # shows in `reelgen jobs list` and its outcome is kept.
            now = time.time()
            known = journal.open(
                JournalEntry(
                    id=new_entry_id(),
                    provider=name,
                    model=bare.model,
                    key="",
                    state="queued",
                    account=_account_id(chosen),
                    shared=False,
                    submitted_at=now,
                    updated_at=now,
                    owner=Owner.current(),
                    heartbeat=now,
                    task_id=task_id,
                    job=job_record(bare),
                )
            ).entry
        return Job(
            provider=chosen,
            config=config,
            request=None,
            key=None,
            warnings=[],
            job=bare,
            deadline_at=deadline_at,
            on_event=on_event,
            queue_timeout=queued,
            journal=journal,
            entry=known,
            use_cache=False,
        )
    # A job made under another configured account is polled with that account's key.
    chosen = provider or provider_for_account(entry.provider, entry.account, config=config)
    _same_provider(job_id, entry.provider, chosen)
    assert journal is not None
    common: dict[str, Any] = {
        "provider": chosen,
        "config": config,
        "request": _request_from(entry),
        "key": entry.key,
        "warnings": [],
        "deadline_at": deadline_at,
        "on_event": on_event,
        "use_cache": entry.shared,
        "queue_timeout": queued,
        "journal": journal,
    }
    provider_job = job_from_record(entry.job) if entry.job is not None else None
    if entry.state == "succeeded" and entry.result is not None:
        # A job that already finished comes back done, with its result; it still has its id.
        return Job(entry=entry, job=provider_job, result=entry.result, **common)
    me = Owner.current()
    if entry.active and entry.owner != me and not entry.orphaned():
        return Job(entry=entry, job=provider_job, mode="follow", **common)
    if entry.owner != me:
        adopted = journal.adopt(entry.id, entry.owner, me)
        if adopted is None:  # someone else adopted it first: follow them
            return Job(entry=journal.get(entry.id) or entry, job=provider_job, mode="follow", **common)
        entry = adopted
    return Job(entry=entry, job=provider_job, mode="recover", **common)


def _same_provider(job_id: str, name: str, chosen: Provider) -> None:
    if chosen.name != name:
        raise ValidationError(f"job {job_id!r} belongs to provider {name!r}, not {chosen.name!r}", field="job_id")
