"""Witnesses of what a provider does, so "nothing before validation" (and more) can be checked.

Two independent ones, because a provider can reach the network without going through
its own `submit`:

- `CountingProvider` wraps a provider and records every call the core makes to it, in
  order (`validate`, `submit`, `poll`, `cancel`), with the jobs and statuses it returned.
- `SocketAudit` records every attempt the process makes to reach the network while it is
  active (any thread: SDKs run in executors): TCP connects, UDP datagrams, DNS lookups,
  through an audit hook (`sys.addaudithook`), and can refuse those that leave the
  machine: the billing guard's last line of defence.

A sandbox's own counter of accepted jobs (`Sandbox.billed_jobs`) is the third witness,
on the server's side.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from reelgen.capabilities import Capabilities
from reelgen.contract import VideoRequest
from reelgen.provider import JobStatus, Provider, ProviderJob

__all__ = ["BillingGuardError", "Call", "CountingProvider", "SocketAudit", "is_loopback"]

#: The calls that reach the provider's service (validate is offline by contract).
OUTBOUND = ("submit", "poll", "cancel")


@attrs.frozen
class Call:
    """One call the core made to the provider."""

    method: str
    at: float
    task_id: str | None = None


class CountingProvider:
    """A provider that records every call made to it, then passes it on unchanged."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.capabilities: Capabilities = inner.capabilities
        self.calls: list[Call] = []
        self.jobs: list[ProviderJob] = []
        self.statuses: list[tuple[str, JobStatus]] = []
        self.cancels: list[tuple[str, bool]] = []
        self._lock = threading.Lock()

    def _record(self, method: str, task_id: str | None = None) -> None:
        with self._lock:
            self.calls.append(Call(method, time.monotonic(), task_id))

    def validate(self, request: VideoRequest) -> list[str]:
        self._record("validate")
        return self.inner.validate(request)

    async def submit(self, request: VideoRequest) -> ProviderJob:
        self._record("submit")
        job = await self.inner.submit(request)
        with self._lock:
            self.jobs.append(job)
        return job

    async def poll(self, job: ProviderJob) -> JobStatus:
        self._record("poll", job.task_id)
        status = await self.inner.poll(job)
        with self._lock:
            self.statuses.append((job.task_id, status))
        return status

    async def cancel(self, job: ProviderJob) -> bool:
        self._record("cancel", job.task_id)
        stopped = await self.inner.cancel(job)
        with self._lock:
            self.cancels.append((job.task_id, stopped))
        return stopped

    def poll_delay(self, job: ProviderJob, attempt: int, elapsed: float) -> float:
        return self.inner.poll_delay(job, attempt, elapsed)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        # Anything beyond the protocol (a provider's extras) goes to the real provider.
        return getattr(self.inner, name)

    # -- reading the record --------------------------------------------------------------

    def count(self, *methods: str) -> int:
        """How many calls of these methods (all outbound ones if none are named)."""
        wanted = methods or OUTBOUND
        with self._lock:
            return sum(1 for call in self.calls if call.method in wanted)

    def methods(self) -> list[str]:
        with self._lock:
            return [call.method for call in self.calls]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.jobs.clear()
            self.statuses.clear()
            self.cancels.clear()

    def __repr__(self) -> str:
        return f"<CountingProvider {self.name!r}: {self.count('submit')} submit, {self.count('poll')} poll>"


class BillingGuardError(ConnectionRefusedError):
    """A connection off this machine, refused because the provider bills and billing is not allowed."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (and its IPv4-mapped forms) and `localhost`."""
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


#: Audit events (see `sys.addaudithook`) through which a process reaches the network: a
#: connection (TCP, or a connected UDP socket), a datagram sent to an address, a name lookup.
_ADDRESS_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_LOOKUP_EVENTS = frozenset({"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo"})
_EVENTS = _ADDRESS_EVENTS | _LOOKUP_EVENTS


@attrs.frozen
class Connection:
    """One attempt to reach the network: `kind` is connect, sendto, sendmsg or lookup (DNS)."""

    family: int
    host: str
    port: int | None
    thread: str
    kind: str = "connect"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


_state_lock = threading.Lock()
_active: list[SocketAudit] = []
_installed: list[bool] = []


def _host_port(address: Any) -> tuple[str, int | None]:
    if isinstance(address, tuple) and address:
        port = address[1] if len(address) > 1 else None
        return _text(address[0]), port if isinstance(port, int) else None
    return _text(address), None


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return "" if value is None else str(value)


def _local_lookup(host: str) -> bool:
    # Numeric addresses, the unspecified address and "no host" (bind, passive) send no query.
    if host in ("", "0.0.0.0", "::"):
        return True
    return is_loopback(host)


def _observed(event: str, args: tuple[Any, ...]) -> Connection | None:
    thread = threading.current_thread().name
    if event in _ADDRESS_EVENTS:
        sock, address = args[0], args[-1]
        family = getattr(sock, "family", None)
        if family not in (socket.AF_INET, socket.AF_INET6):
            return None  # Unix sockets and socketpairs never leave the machine
        if event == "socket.sendmsg" and address is None:
            return None  # a connected socket: its connect was seen
        host, port = _host_port(address)
        return Connection(int(family), host, port, thread, event.split(".", 1)[1])
    if event == "socket.getaddrinfo":
        host, port = _text(args[0]), args[1]
        family = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        return Connection(family, host, port if isinstance(port, int) else None, thread, "lookup")
    if event == "socket.getnameinfo":
        host, port = _host_port(args[0])
        return Connection(0, host, port, thread, "lookup")
    return Connection(0, _text(args[0]), None, thread, "lookup")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Called for every audited event in the process (imports, opens...): return at once
    # unless it is a network event and someone is listening.
    if event not in _EVENTS or not _active:
        return
    try:
        connection = _observed(event, args)
    except Exception:  # noqa: BLE001 - an audit hook must never break the call it watches
        return
    if connection is None:
        return
    with _state_lock:
        audits = list(_active)
    for audit in audits:
        audit.connections.append(connection)
    local = _local_lookup(connection.host) if connection.kind == "lookup" else connection.loopback
    if not local and any(audit.refuse_remote for audit in audits):
        what = "a name lookup of" if connection.kind == "lookup" else f"a {connection.kind} to"
        raise BillingGuardError(
            f"reelgen-contracts refused {what} {connection.host}:{connection.port}: the provider bills per "
            "job and its endpoint is not a loopback sandbox; pass --reelgen-allow-billing to run against it"
        )


def _install() -> None:
    # An audit hook sees every way out (connect, UDP sendto, DNS, from C or Python, any
    # thread), where patching socket.socket misses the module-level resolver functions.
    # Hooks cannot be removed: one is installed per process, idle when no audit is active.
    with _state_lock:
        if _installed:
            return
        sys.addaudithook(_audit)
        _installed.append(True)


class SocketAudit:
    """Records every network attempt made anywhere in the process while active.

    Connections, datagrams and name lookups (`Connection.kind`). With `refuse_remote=True`,
    those reaching anything but loopback raise `BillingGuardError` instead of being made.
    """

    def __init__(self, *, refuse_remote: bool = False) -> None:
        self.refuse_remote = refuse_remote
        self.connections: list[Connection] = []

    def __enter__(self) -> SocketAudit:
        _install()
        with _state_lock:
            _active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with _state_lock:
            if self in _active:
                _active.remove(self)

    @property
    def remote(self) -> list[Connection]:
        return [c for c in self.connections if not c.loopback]

    def __len__(self) -> int:
        return len(self.connections)


@contextmanager
def audit_sockets(*, refuse_remote: bool = False) -> Iterator[SocketAudit]:
    with SocketAudit(refuse_remote=refuse_remote) as audit:
        yield audit
