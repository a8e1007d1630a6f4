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
6. Optional: `async def find_jobs(self, request, *, since, until) -> list[ProviderJob] | None`
   — the account's tasks created between `since` and `until` (Unix times) that could be
   this request's, from the service's task list; None when it cannot list. The core calls
   it after an ambiguous create (lost reply, 408, 5xx: `SubmissionUnknown` or a
   `TransientError` with that `status_code`) and adopts the one task nobody has claimed;
   an empty list proves no task was made once the create can no longer land: optional
   `create_settle_seconds` (float; default 60) after it was sent, e.g. the create's read
   timeout plus a margin. `request.reference_image` may be None here (the journal keeps
   only the image's hash). Without it, such a job stays `unknown`.

The data in `ProviderJob` must be JSON (the journal keeps it; the core refuses otherwise).
A create that may have reached the service but got no answer must raise
`SubmissionUnknown`, never a plain `TransientError`: only what is proved not created is
ever retried.

`BaseProvider` gives the defaults most providers share (no extra warnings, cancel not
supported, a capped exponential poll schedule, nothing to close) and structures the
provider's `[providers.NAME]` section into its declared `config_class`, so a minimal
provider writes `name`, `capabilities`, `submit` and `poll`. The `Provider` protocol stays
for those who want to write the whole object themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

import attrs

from ._converters import plain_dict
from ._settings import structure_provider_config
from .capabilities import Capabilities
from .contract import VideoRequest
from .errors import ConfigError

__all__ = [
    "TERMINAL_STATES",
    "BaseProvider",
    "JobState",
    "JobStatus",
    "Provider",
    "ProviderFactory",
    "ProviderJob",
    "ProviderOutput",
    "structure_provider_config",
]

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
    #: The prompt the provider says it ran, if it echoes one (as it received it: truncated
    #: where the provider truncates). Lets an adopted task be checked against the request.
    prompt: str | None = None


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


C = TypeVar("C")


class BaseProvider(Generic[C]):
    """A provider with the defaults most providers share; subclass it and write `submit` and `poll`.

    Set `name` and `capabilities` on the class. To take settings, set `config_class` to an
    attrs class: the core structures `[providers.NAME]` into it with its cattrs converter
    (TOML types checked, unknown keys refused, every error `ConfigError: providers.NAME.key
    ...`), and the instance is `self.config`. Without one, the provider takes no settings
    and `self.config` is None. The class itself is the factory to register:
    `register("name", MyProvider)`; it is built with the section as a mapping, or with an
    instance of `config_class` directly (in tests).
    """

    name: str
    capabilities: Capabilities
    #: The attrs class `[providers.NAME]` is structured into (None: no settings).
    config_class: type[Any] | None = None
    #: A non-reversible id of the credential in use (never the key itself); the core's
    #: governor counts concurrency and rates per (provider, account_id).
    account_id: str = ""
    #: `poll_delay`: the first wait, doubled on each look up to `poll_interval_max`.
    poll_interval: float = 1.0
    poll_interval_max: float = 15.0

    config: C

    def __init__(self, config: Mapping[str, Any] | C | None = None) -> None:
        self.config = self.structure_config(config)

    @classmethod
    def structure_config(cls, config: Mapping[str, Any] | C | None) -> C:
        """The provider's settings from its section (or an instance of `config_class`, as it is)."""
        provider = getattr(cls, "name", cls.__name__)
        if cls.config_class is None:
            if config:
                keys = ", ".join(f"providers.{provider}.{key}" for key in sorted(config))  # type: ignore[arg-type]
                raise ConfigError(f"unknown setting {keys}: the {provider} provider takes no settings")
            return None  # type: ignore[return-value]
        if isinstance(config, cls.config_class):
            return config  # type: ignore[no-any-return]
        settings: C = structure_provider_config(cls.config_class, config or {}, provider=provider)  # type: ignore[arg-type]
        return settings

    def validate(self, request: VideoRequest) -> list[str]:
        """Nothing beyond the declared capabilities (the core has checked those)."""
        return []

    async def submit(self, request: VideoRequest) -> ProviderJob:
        raise NotImplementedError(f"{type(self).__name__}.submit")

    async def poll(self, job: ProviderJob) -> JobStatus:
        raise NotImplementedError(f"{type(self).__name__}.poll")

    async def cancel(self, job: ProviderJob) -> bool:
        """Not supported: the job runs on (declare `cancel="none"` in the capabilities)."""
        return False

    def poll_delay(self, job: ProviderJob, attempt: int, elapsed: float) -> float:
        """`poll_interval`, doubling with each look, never more than `poll_interval_max`."""
        return float(min(self.poll_interval_max, self.poll_interval * 2.0 ** min(max(attempt, 0), 32)))

    def warm_up(self) -> None:
        """Import what the first call would (a heavy SDK): `reelgen worker` calls it once per
        worker process at boot, so no row pays for it. Nothing by default."""

    async def aclose(self) -> None:
        """Nothing to release."""
