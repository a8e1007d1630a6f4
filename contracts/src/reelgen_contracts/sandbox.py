"""What a provider offers the suite besides itself: a sandbox to run against, and faults to inject.

A `Sandbox` is the provider's test double (an emulator, a fake service): configuration
that points the provider at it, whether it is on this machine (so a billed provider may
run against it), how many jobs it has accepted (a server-side witness that invalid
requests never got there), and optionally a `FaultInjector` so the suite can check that
errors come back as the right type with the provider's code and message.

Provider authors hand one to the suite from the `sandbox` fixture of their
`ProviderContract` subclass; `pytest --reelgen-provider NAME` looks for a fixture named
`reelgen_sandbox_NAME` (any pytest plugin or conftest may define it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from reelgen.errors import (
    AuthenticationError,
    ContentRejected,
    ProviderError,
    ProviderFailed,
    QuotaExceeded,
    RateLimited,
    TaskExpired,
    TransientError,
)

__all__ = ["FAULT_KINDS", "ExpectedFault", "FaultInjector", "Sandbox"]

#: Fault kinds the suite knows, and the error each must surface as. `None`: the core
#: retries it, so the generation must still succeed (and no job is paid for twice).
FAULT_KINDS: Mapping[str, type[ProviderError] | None] = {
    "auth": AuthenticationError,  # the key is refused when submitting
    "quota": QuotaExceeded,  # arrears or an exhausted quota, when submitting
    "content": ContentRejected,  # moderation refuses the input
    "failed": ProviderFailed,  # the job fails remotely
    "expired": TaskExpired,  # the provider forgets the task while it is polled
    "transient": None,  # one failed status query (5xx, reset): retried
    "rate_limited": None,  # one 429 on submit: retried after a backoff
}
#: The error type a retried fault raises if it does not clear (for messages).
RETRIED_AS: Mapping[str, type[ProviderError]] = {"transient": TransientError, "rate_limited": RateLimited}


def _plain_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    # A named converter: mypy's attrs plugin cannot see through `converter=dict`.
    return dict(value)


@attrs.frozen(kw_only=True)
class ExpectedFault:
    """What the provider should report for an armed fault.

    `code` must equal the error's `.code`; `message`, if given, must appear in its
    `.provider_message` (the provider's words are kept, not replaced).
    """

    code: str | None = None
    message: str | None = None


@runtime_checkable
class FaultInjector(Protocol):
    """Arms one fault at a time in a sandbox."""

    def kinds(self) -> Collection[str]:
        """The `FAULT_KINDS` this sandbox can produce."""
        ...

    def arm(self, kind: str) -> ExpectedFault:
        """Make the next generation meet this fault; return what the error must carry."""
        ...

    def disarm(self) -> None:
        """Back to normal service."""
        ...


@attrs.frozen(kw_only=True)
class Sandbox:
    """A provider's test double, as the suite sees it."""

    #: Merged over the provider's configuration (e.g. `{"base_url": emulator.base_url}`).
    config: Mapping[str, Any] = attrs.field(factory=dict, converter=_plain_dict)
    #: The sandbox runs on this machine, so nothing reaches a billed service.
    loopback: bool = True
    #: Jobs the sandbox has accepted so far (each would have been billed).
    billed_jobs: Callable[[], int] | None = None
    faults: FaultInjector | None = None
    #: What the sandbox received for a task id (e.g. the parameters sent), JSON-safe and free
    #: of per-call noise (request ids, times). Lets the suite see options that change only
    #: what is sent, not what comes back.
    received: Callable[[str], Mapping[str, Any] | None] | None = None
    #: Options whose effect the sandbox cannot show in a result (name -> why).
    invisible_options: Mapping[str, str] = attrs.field(factory=dict, converter=_plain_dict)
    #: Wall seconds per second of the service's time (an emulator running 100x fast: 0.01):
    #: poll counts are judged in the service's time.
    time_scale: float = 1.0
    #: Credential values the provider uses besides those in its configuration (which the
    #: suite finds itself): none may appear in job data, events, results, errors, logs or files.
    secrets: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @classmethod
    def coerce(cls, value: Sandbox | Mapping[str, Any] | None) -> Sandbox | None:
        """A `Sandbox` from what a fixture returned (a `Sandbox`, a config mapping, or None)."""
        if value is None or isinstance(value, Sandbox):
            return value
        if isinstance(value, Mapping):
            return cls(config=value)
        raise TypeError(
            f"a sandbox fixture must return a Sandbox, a config mapping or None, not {type(value).__name__}"
        )
