"""One emulated DashScope account (`Service`) and how a request reaches its route.

`Service.handle` maps a `Request` to a `Reply` through three route sets, each in its
own module over this one `Service`: DashScope's task API (`routes_api`), the OSS
stand-ins (`routes_oss`) and the emulator's controls (`routes_control`). Every
DashScope reply is JSON with a `request_id`; an `ApiError` anywhere becomes
`{"request_id", "code", "message"}` with its status, an `OssError` becomes OSS's XML
error. The emulator never imports the provider: it is an independent oracle of the
documented API.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any

import attrs

from . import routes_api, routes_control, routes_oss
from .clock import Clock
from .config import EmulatorConfig, Faults
from .errors import ApiError, OssError
from .faults import FaultInjector
from .inputs import MediaFetcher
from .limits import RateLimiter
from .oss import OssBuckets
from .render import RenderCache, shared_cache
from .routes import match
from .state import Task, TaskStore
from .wire import Reply, Request, json_reply, new_request_id

__all__ = ["Service"]

logger = logging.getLogger(__name__)

ROUTES = [*routes_api.ROUTES, *routes_oss.ROUTES, *routes_control.ROUTES]


class Service:
    """One emulated DashScope account: its tasks, uploads, limits and faults."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock(config.utc_offset_hours)
        self.oss = OssBuckets(self.clock, config)
        self.store = TaskStore(config, self.clock, self.oss)
        self.injector = FaultInjector(config.faults)
        self.submit_limit = RateLimiter(config.submit_rps)
        self.query_limit = RateLimiter(config.query_qps)
        self.upload_limit = RateLimiter(config.upload_qps)
        self.fetcher = MediaFetcher(
            timeout=config.fetch_timeout_seconds,
            oss_lookup=lambda key: self.oss.lookup(key, config.model),
        )
        self._renders: RenderCache | None = None
        # Set on stop, so a `create_reply_stall` never keeps a handler thread past it.
        self._wake = threading.Event()
        # The account's (made-up) user id, as the list route reports it.
        self.account_id = str(10**15 + secrets.randbelow(9 * 10**15))

    @property
    def renders(self) -> RenderCache:
        # Created on first use so that starting an emulator costs no directory or threads.
        if self._renders is None:
            self._renders = shared_cache(self.config.cache_dir)
        return self._renders

    # -- plumbing --------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        rid = new_request_id()
        route, params = match(ROUTES, request)
        if route is None:
            if request.path.startswith(f"{routes_api.API_PREFIX}/services/"):
                return self.error(rid, ApiError.invalid("url error, please check url!"))
            return self.error(rid, ApiError(404, "NotFound", "Not Found"))
        try:
            if route.kind != "control":
                delay = self.injector.slow()
                if delay:
                    self.inject("slow")
                    time.sleep(delay)
            reply: Reply = route.handler(self, request, rid, **params)
            return reply
        except ApiError as exc:
            return self.error(rid, exc)
        except OssError as exc:
            return Reply(exc.status, exc.to_xml(rid, route.host or ""), "application/xml", {"x-oss-request-id": rid})
        except Exception:
            logger.exception("emulator error on %s %s", request.method, request.path)
            return self.error(rid, ApiError(500, "InternalError"))

    def error(self, rid: str, exc: ApiError) -> Reply:
        """The JSON error reply, counted."""
        with self.store.lock:
            self.store.counters.errors += 1
            if exc.status == 429:
                self.store.counters.throttled += 1
        return json_reply(exc.status, {"request_id": rid, "code": exc.code, "message": exc.message})

    def authenticate(self, request: Request) -> str:
        """The request's API key, or 401 as the service words it."""
        # The key is checked and then only ever hashed: never logged, stored or echoed.
        scheme, _, key = request.header("authorization").strip().partition(" ")
        key = key.strip()
        if not scheme:
            raise ApiError(401, "InvalidApiKey", "No API-key provided.")
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, "InvalidApiKey", "Invalid API-key provided.")
        if self.config.api_keys is not None and key not in self.config.api_keys:
            raise ApiError(401, "InvalidApiKey", "Invalid API-key provided.")
        return key

    def inject(self, kind: str) -> None:
        """Count an injected fault of `kind`."""
        with self.store.lock:
            self.store.counters.fault(kind)

    # -- state for the controls and the Python API ----------------------------------

    def counters(self) -> dict[str, Any]:
        statuses = self.store.status_counts()
        with self.store.lock:
            values = attrs.asdict(self.store.counters)
        values["tasks_by_status"] = statuses
        return values

    def tasks(self) -> list[dict[str, Any]]:
        fmt = self.clock.format
        snapshot = []
        for task, status in self.store.all_tasks():
            snapshot.append(
                {
                    "id": task.task_id,
                    "task_id": task.task_id,
                    "number": task.number,
                    "status": status,
                    "model": task.spec.model,
                    "input": dict(task.spec.input),
                    "parameters": dict(task.spec.parameters),
                    "ignored": list(task.spec.ignored),
                    "api_key_id": task.api_key_id,
                    "request_id": task.request_id,
                    "submit_time": fmt(task.submit_at),
                    "scheduled_time": fmt(task.scheduled_at) if task.scheduled_at is not None else None,
                    "end_time": fmt(task.end_at) if task.end_at is not None else None,
                    "seen_end_time": fmt(task.seen_end_at) if task.seen_end_at is not None else None,
                    "code": task.code,
                    "message": task.message,
                    "output_size": list(task.output_size) if task.output_size else None,
                    "seed": task.render_key.seed if task.render_key else None,
                    "rendered": task.render is not None and task.render.done(),
                    "video_url": task.video_url,
                    "url_expires_at": task.url_expires_at,
                    "usage": self.store.usage(task),
                }
            )
        return snapshot

    def reset(self) -> None:
        """Forget tasks, uploads, counters and rate-limit windows; restart fault streams."""
        self.release_renders(self.store.reset())
        self.oss.reset()
        self.clock.reset()
        self.injector = FaultInjector(self.injector.faults)
        for limiter in (self.submit_limit, self.query_limit, self.upload_limit):
            limiter.reset()

    def release_renders(self, tasks: list[Task] | None = None) -> None:
        """Drop queued renders nobody will wait for (on reset and stop)."""
        if self._renders is None:
            return
        for task in self.store.all_tasks_raw() if tasks is None else tasks:
            if task.render is not None and task.render_key is not None and not task.render.done():
                self._renders.release(task.render_key, task.render)

    def set_faults(self, faults: Faults) -> None:
        """New probabilities; faults scripted and not yet met stay scripted."""
        self.injector = self.injector.with_faults(faults)

    def script_faults(self, fault: str, times: int = 1) -> dict[str, list[str]]:
        """The next `times` requests of that kind meet `fault`; returns what is pending."""
        self.injector.script(fault, times)
        return self.injector.scripted()

    def stall(self, seconds: float) -> None:
        """Hold a reply back for `seconds`, or until the emulator stops."""
        self._wake.wait(seconds)

    def wake(self) -> None:
        """Cut short every stalled create reply (the emulator is stopping)."""
        self._wake.set()
        self._wake = threading.Event()
