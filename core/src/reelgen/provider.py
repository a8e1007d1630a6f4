"""The interface between the core and a provider.

A provider is a small async object. The core drives it; the provider never downloads,
stores, caches or retries on its own (those are the core's job, done once for all):

1. `validate(request)` — offline, before anything is sent. Raise `ValidationError` for what
   the API would reject; return warnings for what it would silently ignore or change.
   The core has already checked the request against `capabilities`.
2. `submit(request)` — start a remote job and return a `ProviderJob` whose `task_id`
   is enough to find it again from another process.
3. `poll(job)` — one status query, no waiting. Raise `TransientError` for a failed query
   (the core retries), a `ProviderError` subclass for a job that failed.
4. `cancel(job)` — stop the remote job if the provider allows it; return whether it did.
5. `poll_delay(job, attempt, elapsed)` — when to look next; the provider knows its service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from ._converters import plain_dict
from .capabilities import Capabilities
from .contract import VideoRequest

__all__ = ["JobState", "JobStatus", "Provider", "ProviderFactory", "ProviderJob", "ProviderOutput"]

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


@attrs.frozen(kw_only=True)
class ProviderJob:
    """A submitted remote job. Everything here is JSON-safe and secret-free (it is persisted)."""

    provider: str
    model: str
    task_id: str
    #: Unix time when the job was submitted.
    submitted_at: float
    #: The seed sent with the job (a provider that picks one reports it here).
    seed: int | None = None
    #: Warnings the provider found while submitting (e.g. an option it had to adjust).
    warnings: tuple[str, ...] = ()
    #: Provider-private, JSON-safe state needed to poll or cancel later.
    data: Mapping[str, Any] = attrs.field(factory=dict, converter=plain_dict, hash=False)

    @property
    def id(self) -> str:
        """The durable job id: `provider:task_id`, enough for `reelgen.resume`."""
        return f"{self.provider}:{self.task_id}"


@attrs.frozen(kw_only=True)
class ProviderOutput:
    """Where the provider put the finished video, and what it billed."""

    source_url: str
    expires_at: str | None = None
    usage: Mapping[str, Any] = attrs.field(factory=dict, converter=plain_dict, hash=False)
    #: Seed the provider reports having used, if it reports one.
    seed: int | None = None
    warnings: tuple[str, ...] = ()
    #: HTTP headers needed to download `source_url` (never logged or stored).
    download_headers: Mapping[str, str] = attrs.field(factory=dict, converter=plain_dict, hash=False, repr=False)


@attrs.frozen(kw_only=True)
class JobStatus:
    """One observation of a remote job."""

    state: JobState
    #: 0.0 to 1.0 if the provider reports progress.
    progress: float | None = None
    #: The provider's own status word (e.g. "PENDING"), for events and messages.
    raw_status: str | None = None
    #: Set when `state == "succeeded"`.
    output: ProviderOutput | None = None
    message: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


@runtime_checkable
class Provider(Protocol):
    """What a provider plugin implements. See the module docstring for the life of a job."""

    name: str
    capabilities: Capabilities

    def validate(self, request: VideoRequest) -> list[str]: ...

    async def submit(self, request: VideoRequest) -> ProviderJob: ...

    async def poll(self, job: ProviderJob) -> JobStatus: ...

    async def cancel(self, job: ProviderJob) -> bool: ...

    def poll_delay(self, job: ProviderJob, attempt: int, elapsed: float) -> float: ...

    async def aclose(self) -> None: ...


class ProviderFactory(Protocol):
    """Builds a provider from its section of the configuration (`[providers.NAME]`).

    Must be cheap and offline: `reelgen providers` builds every provider to list it.
    """

    def __call__(self, config: Mapping[str, Any]) -> Provider: ...
