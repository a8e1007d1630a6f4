"""What each contract test runs on: one provider, an event loop, a scratch config, and witnesses.

The suite's tests are synchronous (Hypothesis drives them); provider calls run on one
event loop in a background thread for the whole session, so a provider built once can
keep its HTTP clients across examples, and a hung provider fails its test (`call_timeout`)
instead of hanging the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import attrs

from reelgen.capabilities import Capabilities
from reelgen.contract import VideoRequest, VideoResult
from reelgen.events import Event
from reelgen.provider import Provider, ProviderJob

from .images import ImageServer
from .sandbox import Sandbox
from .strategies import Budget
from .witnesses import CountingProvider, SocketAudit, is_loopback

__all__ = ["Generation", "Harness", "LoopThread"]

T = TypeVar("T")

ProviderBuilder = Callable[[Mapping[str, Any]], Provider]


class LoopThread:
    """One asyncio loop in a daemon thread, shared by every contract test of the session."""

    _instance: LoopThread | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="reelgen-contracts-loop", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> LoopThread:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def start(self, awaitable: Awaitable[T]) -> concurrent.futures.Future[T]:
        async def wrapper() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop)

    def run(self, awaitable: Awaitable[T], timeout: float) -> T:
        return self.wait(self.start(awaitable), timeout)

    def wait(self, future: concurrent.futures.Future[T], timeout: float) -> T:
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise AssertionError(
                f"the provider did not answer within {timeout:g} s (a hung call; raise "
                "ProviderContract.call_timeout if the sandbox is really this slow)"
            ) from None


@attrs.define
class Generation:
    """One run through the pipeline, with everything the witnesses saw."""

    request: VideoRequest
    result: VideoResult | None
    error: Exception | None
    events: list[Event]
    #: Provider methods called during the run, in order.
    calls: list[str]
    #: The jobs `submit` created during the run (a refused submit creates none).
    jobs: list[ProviderJob]
    #: Outbound connections opened during the run (any thread).
    connections: int
    #: Jobs the sandbox accepted during the run (None: the sandbox does not say).
    billed_jobs: int | None
    #: Wall seconds the run took.
    elapsed: float = 0.0
    #: Peak resident memory the run added, in bytes (None: the platform cannot say).
    memory_growth: int | None = None
    #: What `memory_growth` may be for this request (see `_resources.memory_bound`).
    memory_bound: int = 0
    #: The network attempts themselves (kind, host, port), for messages.
    network: list[Any] = attrs.Factory(list)
    #: Log records emitted during the run (formatted), to look for secrets in.
    logs: list[str] = attrs.Factory(list)

    def unwrap(self) -> VideoResult:
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Harness:
    """One provider under test, with a scratch configuration and witnesses of its calls."""

    def __init__(
        self,
        *,
        name: str,
        build: ProviderBuilder,
        provider_config: Mapping[str, Any],
        sandbox: Sandbox | None,
        workdir: Path,
        allow_billing: bool,
        thorough: bool,
        call_timeout: float,
        deadline: float,
        image_server: ImageServer | None,
        budget: Budget,
    ) -> None:
        self.name = name
        self.sandbox = sandbox
        self.provider_config = {**dict(provider_config), **(dict(sandbox.config) if sandbox else {})}
        self.workdir = workdir
        self.storage_dir = workdir / "videos"
        self.thorough = thorough
        self.call_timeout = call_timeout
        self.deadline = deadline
        self.image_server = image_server
        self.budget = budget
        self.allow_billing = allow_billing
        self._build = build
        self._created: list[CountingProvider] = []
        self.loop = LoopThread.get()
        with SocketAudit() as audit:
            self.provider = self.new_provider()
        #: Connections opened while building the provider (must be none: factories are offline).
        self.construction_connections = list(audit.connections)
        self.caps: Capabilities = self.provider.capabilities
        self.guard = SocketAudit(refuse_remote=self.caps.billed and not allow_billing)

    # -- lifecycle ---------------------------------------------------------------------

    def new_provider(self) -> CountingProvider:
        """A new instance from the same configuration: "another process" for resume tests."""
        provider = CountingProvider(self._build(dict(self.provider_config)))
        self._created.append(provider)
        return provider

    def endpoint_is_local(self) -> bool:
        """True if what the provider talks to is provably on this machine."""
        if self.sandbox is not None:
            return self.sandbox.loopback
        urls = [v for v in _walk(self.provider_config) if isinstance(v, str) and "://" in v]
        for attribute in ("base_url", "endpoint", "url"):
            value = getattr(self.provider.inner, attribute, None)
            if isinstance(value, str) and "://" in value:
                urls.append(value)
        return bool(urls) and all(is_loopback(urlparse(url).hostname or "") for url in urls)

    def billing_refusal(self) -> str | None:
        """Why the suite must not run against this provider as configured (None: it may)."""
        if self.caps.billed and not self.allow_billing and not self.endpoint_is_local():
            return (
                f"reelgen-contracts: refusing to run the suite against {self.name!r}: it bills per job "
                "(capabilities.billed) and its configured endpoint is not a loopback sandbox. Point it at "
                f"its emulator (a `reelgen_sandbox_{self.name}` fixture, or a loopback base URL in its "
                "config), or pass --reelgen-allow-billing to spend real money."
            )
        return None

    def close(self) -> None:
        for provider in self._created:
            try:
                self.run(provider.aclose())
            except Exception as exc:
                raise AssertionError(f"{self.name}: aclose() raised {type(exc).__name__}: {exc}") from exc

    # -- running things ------------------------------------------------------------------

    def run(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        return self.loop.run(awaitable, timeout or self.call_timeout)

    def config(self, *, cache: bool = False, jobs: bool = True) -> Any:
        from reelgen.config import CacheConfig, Config, JobsConfig, StorageConfig

        return Config(
            provider=self.name,
            deadline=self.deadline,
            storage=StorageConfig(url=str(self.storage_dir)),
            cache=CacheConfig(url=f"sqlite:///{self.workdir / 'cache.db'}" if cache else "none"),
            jobs=JobsConfig(url=f"sqlite:///{self.workdir / 'jobs.db'}" if jobs else "none"),
            providers={self.name: dict(self.provider_config)},
        )

    def billed_jobs(self) -> int | None:
        if self.sandbox is None or self.sandbox.billed_jobs is None:
            return None
        return int(self.sandbox.billed_jobs())

    @contextmanager
    def witnessed(self, provider: CountingProvider | None = None) -> Iterator[dict[str, Any]]:
        """Count calls, connections and sandbox jobs across the block."""
        provider = provider or self.provider
        seen: dict[str, Any] = {}
        start_calls = len(provider.calls)
        start_created = len(provider.jobs)
        start_jobs = self.billed_jobs()
        with SocketAudit() as audit:
            yield seen
        seen["calls"] = [call.method for call in provider.calls[start_calls:]]
        seen["jobs"] = list(provider.jobs[start_created:])
        seen["connections"] = list(audit.connections)
        end_jobs = self.billed_jobs()
        seen["billed_jobs"] = None if start_jobs is None or end_jobs is None else end_jobs - start_jobs

    def generate(
        self,
        request: VideoRequest,
        *,
        strict: bool = False,
        use_cache: bool = False,
        deadline: float | None = None,
        provider: CountingProvider | None = None,
        config: Any = None,
    ) -> Generation:
        import reelgen

        from ._conduct import captured_logs
        from ._resources import ResourceWatch, memory_bound

        provider = provider or self.provider
        events: list[Event] = []
        result: VideoResult | None = None
        error: Exception | None = None
        bound = memory_bound(request)
        running: list[concurrent.futures.Future[VideoResult]] = []
        # A runaway is stopped while it runs: after it, the machine may be gone.

        def stop(growth: int) -> None:
            for future in running:
                future.cancel()

        watch = ResourceWatch(bound, on_breach=stop)
        with self.witnessed(provider) as seen, watch, captured_logs() as logs:
            running.append(
                self.loop.start(
                    reelgen.agenerate(
                        request,
                        provider,
                        config=config or self.config(cache=use_cache),
                        strict=strict,
                        use_cache=use_cache,
                        on_event=events.append,
                        deadline=deadline,
                    )
                )
            )
            try:
                result = self.loop.wait(running[0], (deadline or self.deadline) + self.call_timeout)
            except concurrent.futures.CancelledError:
                error = AssertionError(
                    f"the generation was stopped: its memory grew by {(watch.breached or 0) / 2**20:.0f} MiB, over "
                    f"the bound of {bound / 2**20:.0f} MiB for this request"
                )
            except Exception as exc:  # noqa: BLE001 - the tests judge what was raised
                error = exc
        return Generation(
            request=request,
            result=result,
            error=error,
            events=events,
            calls=seen["calls"],
            jobs=seen["jobs"],
            connections=len(seen["connections"]),
            billed_jobs=seen["billed_jobs"],
            elapsed=watch.elapsed,
            memory_growth=watch.growth,
            memory_bound=bound,
            network=[(c.kind, c.host, c.port) for c in seen["connections"]],
            logs=logs,
        )


def _walk(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)
    else:
        yield value
