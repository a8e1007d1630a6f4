"""The account governor: how many jobs an account runs at once and how fast it calls, for every provider.

Providers count their limits per account (DashScope: 5 tasks at once, 5 creates and 20
queries per second, summed over every process and machine using the key). The core
enforces them, so no provider carries its own limiter:

* `Limits` are data: a provider declares them in its `Capabilities` (`max_concurrency`,
  `max_submit_rate`, `max_query_rate`), and `[limits.NAME]` in the configuration
  overrides them (`concurrency`, `submit_rate`, `query_rate`); `limits_for` merges both.
  `queue_ahead` (configuration only) lets that many jobs more be created, to wait at a
  provider that queues excess tasks; a refusal of one turns it off for the account.
* An `Account` is the provider's name and `provider.account_id`, a non-reversible id of
  the credential (never the key), so two keys of one provider have separate limits.
* A `Governor` hands out concurrency `Permit`s (held from just before the create until
  the job is seen to end, renewed on every poll, released on every exit path) and rate
  `Token`s (`throttle`, before every create, status query and cancel; `token.done()` once
  the call returned). Every wait is bounded by the caller's `deadline_at` and reported
  through `on_wait` as a `Wait`.
  Running out of time while waiting for a slot or a submit token is a
  `GenerationTimeout` with no job: nothing was created, nothing is billed.

`get_governor(config)` asks the `reelgen_governor` hook (firstresult) for the backend.
The built-in one (`reelgen.builtins.governor`, registered `trylast`) keeps leases and
rate windows in a SQLite file beside the job journal, shared by every process on the
machine; a plugin answering the hook first (e.g. a Redis one) shares them across machines.

A permit's lease lives `LEASE` seconds without renewal: a permit whose holder died comes
back when its lease expires, or earlier when anyone sees its bound job end
(`release_job`); it is never dropped while its job may still run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

import attrs

from .errors import ConfigError, PluginError

if TYPE_CHECKING:
    from .config import Config
    from .provider import Provider

__all__ = [
    "LEASE",
    "Account",
    "Governor",
    "Limits",
    "Permit",
    "Token",
    "Wait",
    "WaitReason",
    "account_for",
    "get_governor",
    "limits_for",
]

log = logging.getLogger("reelgen.governor")

#: Seconds a permit lives without renewal (8 of bailian's longest poll intervals). A job
#: whose provider polls less often than this should renew it (`Governor.renew_job`).
LEASE = 120.0

WaitReason = Literal["slot", "submit_rate", "query_rate"]
ThrottleKind = Literal["submit", "query"]


def _optional_positive(integer: bool) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or not (math.isfinite(value) and value > 0):
            kind = "a whole number" if integer else "a finite number"
            raise ValueError(f"{attribute.name} must be {kind} greater than 0 (or absent: unlimited), got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class Limits:
    """One account's limits; None means unlimited."""

    #: Jobs the account may run at once.
    concurrency: int | None = attrs.field(default=None, validator=_optional_positive(integer=True))
    #: Creates per second.
    submit_rate: float | None = attrs.field(default=None, validator=_optional_positive(integer=False))
    #: Status queries plus cancels per second.
    query_rate: float | None = attrs.field(default=None, validator=_optional_positive(integer=False))
    #: Jobs created beyond `concurrency` to wait at the provider (PENDING) for a running
    #: one to end, so a freed slot starts its next task at once. Only for an account whose
    #: provider queues excess tasks instead of refusing them; None: never create ahead.
    queue_ahead: int | None = attrs.field(default=None, validator=_optional_positive(integer=True))

    def rate(self, kind: ThrottleKind) -> float | None:
        """The rate for `throttle`'s `kind`."""
        return self.submit_rate if kind == "submit" else self.query_rate

    def permits(self, account: Account | None = None) -> int | None:
        """How many jobs the account may hold at the provider at once: `concurrency`, plus
        `queue_ahead` unless `account` was seen to refuse a task created ahead."""
        if self.concurrency is None:
            return None
        if not self.queue_ahead or (account is not None and account.key in _REFUSES_AHEAD):
            return self.concurrency
        return self.concurrency + self.queue_ahead


#: Accounts (`Account.key`) whose provider refused a task created ahead (a 429 while the
#: account's `concurrency` tasks were running): this process creates ahead for them no more.
_REFUSES_AHEAD: set[str] = set()


def refused_ahead(account: Account, why: object) -> None:
    """A task created ahead for `account` was refused: stop creating ahead for it, loudly."""
    if account.key not in _REFUSES_AHEAD:
        _REFUSES_AHEAD.add(account.key)
        log.warning(
            "%s refused a task created ahead of a free slot (%s): it does not queue tasks beyond "
            "limits.%s.concurrency, so this process no longer creates ahead for this account; "
            "remove limits.%s.queue_ahead from the configuration",
            account.provider,
            why,
            account.provider,
            account.provider,
        )


_LIMIT_KEYS = tuple(field.name for field in attrs.fields(Limits))
_UNLIMITED = ("none", "off", "false", "unlimited", "")


def limits_for(provider: Provider, config: Config) -> Limits:
    """The provider's declared limits, each overridden by `[limits.NAME]` when set there.

    A value of `"none"` (or `"unlimited"`) in the configuration lifts that limit.
    """
    capabilities = provider.capabilities
    declared: dict[str, Any] = {
        "concurrency": capabilities.max_concurrency,
        "submit_rate": capabilities.max_submit_rate,
        "query_rate": getattr(capabilities, "max_query_rate", None),
        "queue_ahead": None,
    }
    overrides: Mapping[str, Any] = getattr(config, "limits", {}).get(provider.name, {})
    unknown = sorted(set(overrides) - set(_LIMIT_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown setting(s) limits.{provider.name}.{', '.join(unknown)}; known: {', '.join(_LIMIT_KEYS)}"
        )
    for key, value in overrides.items():
        if isinstance(value, str) and value.strip().lower() in _UNLIMITED:
            value = None
        declared[key] = value
    try:
        return Limits(**declared)
    except ValueError as exc:
        raise ConfigError(f"limits.{provider.name}.{exc}") from None


@attrs.frozen
class Account:
    """Whose limits: a provider and a non-reversible id of its credential ("" for keyless providers)."""

    provider: str
    id: str

    @property
    def key(self) -> str:
        """One string naming the account, for storage keys."""
        return f"{self.provider}/{self.id}" if self.id else self.provider


def account_for(provider: Provider) -> Account:
    """The account `provider` calls as (`provider.account_id`, "" when it has none)."""
    return Account(provider.name, str(getattr(provider, "account_id", "") or ""))


@attrs.frozen
class Wait:
    """Why a caller is waiting, for progress ("waiting for a slot: 5/5 in use")."""

    reason: WaitReason
    #: Slots in use, or calls in the current rate window (None if the backend cannot tell).
    in_use: int | None
    limit: int | None

    def describe(self) -> str:
        """A line for people: "waiting for a slot: 5/5 in use"."""
        what = {"slot": "a slot", "submit_rate": "a submit token", "query_rate": "a query token"}[self.reason]
        if self.in_use is None or self.limit is None:
            return f"waiting for {what}"
        used = "in use" if self.reason == "slot" else "in the last window"
        return f"waiting for {what}: {self.in_use}/{self.limit} {used}"


OnWait = Callable[[Wait], None]


class Permit(Protocol):
    """One concurrency slot, from just before the create until the job is seen to end."""

    #: Unique per permit (a no-op permit's token is "").
    token: str

    async def bind(self, job_id: str) -> None:
        """After the create: the permit is now named by the job (`release_job` finds it)."""

    async def renew(self) -> None:
        """Extend the lease by `LEASE` (called on every poll)."""

    async def release(self) -> None:
        """Give the slot back. Idempotent; call it on every exit path."""


class Token(Protocol):
    """One call's place in a rate window, from `throttle`.

    A service counts a call when it arrives, somewhere between its start and its end, so
    a call that took long to get there can land in the same second as later fast ones.
    `done()` moves the call's place in the window to its end, which is never before its
    arrival: call it when the call returned or failed (on every exit path; idempotent).
    A token never marked done keeps its start time (the window is then only as exact as
    the calls' latencies are even).
    """

    async def done(self) -> None:
        """The call that took this token has returned (or never started)."""


class Governor(Protocol):
    """A backend for permits and rate windows. It must not bind to an event loop:
    the sync API runs one `asyncio.run` per call against the same governor."""

    async def acquire(
        self,
        account: Account,
        limits: Limits,
        *,
        deadline_at: float,
        on_wait: OnWait | None = None,
        entry: str | None = None,
    ) -> Permit:
        """A concurrency permit, waiting at most until `deadline_at` (on `time.monotonic()`).

        `entry` is the journal entry the permit's create is for: the permit is named by it
        until `bind`, and a live permit already named by it (its holder died mid-create, and
        this process drives the entry now) is taken over, not added to.

        Raises `GenerationTimeout` (job_id None; its message says no task was created)
        when none comes in time. A no-op permit when `limits.concurrency` is None.
        """

    async def throttle(
        self,
        account: Account,
        limits: Limits,
        kind: ThrottleKind,
        *,
        deadline_at: float,
        on_wait: OnWait | None = None,
    ) -> Token:
        """Take one `submit` or `query` token, waiting at most until `deadline_at`.

        Raises `GenerationTimeout` when none comes in time (for `submit`, the message says
        no task was created). No wait when the rate is None. Call `done()` on the token
        once the call returned.
        """

    async def renew_job(self, account: Account, job_id: str, *, entry: str | None = None) -> None:
        """Extend the lease of the permit bound to `job_id` (a job adopted or followed by a
        process that holds no permit for it). With none bound (its creator died before
        binding one), take over the permit named by its journal `entry` if one is live,
        else bind a new one: a running job always counts, and only once."""

    async def release_job(self, account: Account, job_id: str) -> None:
        """The job was seen to end: free its permit, whoever holds it (or held it and died)."""

    async def in_use(self, account: Account) -> int:
        """Permits currently held for `account` (unexpired leases)."""

    async def aclose(self) -> None:
        """Release this process's resources (not the permits: their jobs may still run)."""


def get_governor(config: Config) -> Governor:
    """The governor for `config`, from the `reelgen_governor` hook (the first answer wins).

    Backends cache themselves per process (one per location), so this is cheap to call.
    """
    from .plugins import get_plugin_manager

    governor = get_plugin_manager().hook.reelgen_governor(config=config)
    if governor is None:
        raise PluginError("no plugin answered reelgen_governor (the built-in reelgen.builtins.governor is missing)")
    return governor  # type: ignore[no-any-return]
