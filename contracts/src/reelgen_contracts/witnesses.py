"""Witnesses of what a provider sends out, so "nothing before validation" can be checked.

Two independent ones, because a provider can reach the network without going through
its own `submit`:

- `CountingProvider` wraps a provider and records every call the core makes to it, in
  order (`validate`, `submit`, `poll`, `cancel`), with the jobs and statuses it returned.
- `SocketAudit` records every outbound socket connection the process opens while it is
  active (any thread: SDKs run in executors), and can refuse connections that leave the
  machine: the billing guard's last line of defence.

A sandbox's own counter of accepted jobs (`Sandbox.billed_jobs`) is the third witness,
on the server's side.
"""

from __future__ import annotations

import ipaddress
import socket
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


@attrs.frozen
class Connection:
    family: int
    host: str
    port: int | None
    thread: str

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


_state_lock = threading.Lock()
_active: list[SocketAudit] = []
_original: dict[str, Any] = {}


def _host_port(address: Any) -> tuple[str, int | None]:
    if isinstance(address, tuple) and address:
        return str(address[0]), int(address[1]) if len(address) > 1 else None
    return str(address), None


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # Unix sockets and socketpairs never leave the machine
    host, port = _host_port(address)
    connection = Connection(sock.family, host, port, threading.current_thread().name)
    with _state_lock:
        audits = list(_active)
    for audit in audits:
        audit.connections.append(connection)
    if not connection.loopback and any(audit.refuse_remote for audit in audits):
        raise BillingGuardError(
            f"reelgen-contracts refused a connection to {host}:{port}: the provider bills per job and "
            "its endpoint is not a loopback sandbox; pass --reelgen-allow-billing to run against it"
        )


def _install() -> None:
    with _state_lock:
        if _original:
            return
        _original["connect"] = socket.socket.connect
        _original["connect_ex"] = socket.socket.connect_ex

        def connect(self: socket.socket, address: Any) -> None:
            _check(self, address)
            _original["connect"](self, address)

        def connect_ex(self: socket.socket, address: Any) -> int:
            _check(self, address)
            return int(_original["connect_ex"](self, address))

        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]


class SocketAudit:
    """Records outbound connections made anywhere in the process while active.

    With `refuse_remote=True`, connections to anything but loopback raise
    `BillingGuardError` instead of being made.
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
