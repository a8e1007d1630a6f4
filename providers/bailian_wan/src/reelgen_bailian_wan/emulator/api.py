"""The routes: DashScope's task API, the OSS buckets, and the emulator's own controls.

`Service.handle` maps a `Request` to a `Reply`. Every DashScope reply is JSON with a
`request_id`; an `ApiError` anywhere becomes `{"request_id", "code", "message"}`
with its status, an `OssError` becomes OSS's XML error.

Order of checks on create, like a gateway in front of a service: auth, the async
header, injected faults, the submit rate limit, then the body, then the input media
(data inspection). Content problems the service only finds while generating
(pixel bounds, file size, alpha) are accepted here and end as a FAILED task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from .clock import Clock
from .config import EmulatorConfig, Faults
from .errors import ApiError, OssError, failure_message
from .faults import FaultInjector
from .inputs import MediaFetcher, inspect_audio, inspect_image
from .limits import RateLimiter
from .oss import RESULT_BUCKET, UPLOAD_BUCKET, OssBuckets
from .render import RenderCache, RenderKey, output_size, shared_cache
from .state import Task, TaskStore
from .validation import SEED_MAX, CreateSpec, parse_create
from .wire import Reply, Request, json_reply, new_request_id

__all__ = ["API_PREFIX", "Service"]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
REGION = "cn-beijing"
# The error a `create_reply_5xx` fault answers with, by `Faults.create_reply_status`.
_REPLY_ERRORS = {
    408: ("RequestTimeOut", None),
    500: ("InternalError", None),
    502: ("BadGateway", "Bad Gateway"),
    503: ("ServiceUnavailable", None),
    504: ("RequestTimeOut", None),
}
_Handler = Callable[..., Reply]


@attrs.frozen
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: _Handler
    kind: str  # "api", "oss" or "control"


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
        p = re.escape(API_PREFIX)
        self._routes = [
            _Route("POST", re.compile(rf"{p}/services/aigc/video-generation/video-synthesis/?"), self.create, "api"),
            _Route("GET", re.compile(rf"{p}/tasks/?"), self.list_tasks, "api"),
            _Route("GET", re.compile(rf"{p}/tasks/(?P<task_id>[^/]+)/?"), self.query, "api"),
            _Route("POST", re.compile(rf"{p}/tasks/(?P<task_id>[^/]+)/cancel/?"), self.cancel, "api"),
            _Route("GET", re.compile(rf"{p}/uploads/?"), self.get_policy, "api"),
            _Route("POST", re.compile(rf"/oss/{UPLOAD_BUCKET}/?"), self.upload, "oss"),
            _Route("GET", re.compile(rf"/oss/{RESULT_BUCKET}/(?P<key>.+)"), self.download, "oss"),
            _Route("HEAD", re.compile(rf"/oss/{RESULT_BUCKET}/(?P<key>.+)"), self.download, "oss"),
            _Route("GET", re.compile(r"/__emulator__/counters/?"), self.counters_route, "control"),
            _Route("GET", re.compile(r"/__emulator__/tasks/?"), self.tasks_route, "control"),
            _Route("POST", re.compile(r"/__emulator__/reset/?"), self.reset_route, "control"),
            _Route("POST", re.compile(r"/__emulator__/advance/?"), self.advance_route, "control"),
            _Route("POST", re.compile(r"/__emulator__/faults/?"), self.faults_route, "control"),
            _Route("POST", re.compile(r"/__emulator__/faults/script/?"), self.script_route, "control"),
            _Route("GET", re.compile(r"/__emulator__/health/?"), self.health_route, "control"),
        ]

    @property
    def renders(self) -> RenderCache:
        # Created on first use so that starting an emulator costs no directory or threads.
        if self._renders is None:
            self._renders = shared_cache(self.config.cache_dir)
        return self._renders

    # -- plumbing --------------------------------------------------------------------

    def handle(self, request: Request) -> Reply:
        rid = new_request_id()
        route, params = self._match(request)
        if route is None:
            if request.path.startswith(f"{API_PREFIX}/services/"):
                return self._error(rid, ApiError.invalid("url error, please check url!"))
            return self._error(rid, ApiError(404, "NotFound", "Not Found"))
        try:
            if route.kind != "control":
                delay = self.injector.slow()
                if delay:
                    self._inject("slow")
                    time.sleep(delay)
            return route.handler(request, rid, **params)
        except ApiError as exc:
            return self._error(rid, exc)
        except OssError as exc:
            host = f"{UPLOAD_BUCKET if route.handler == self.upload else RESULT_BUCKET}.oss-cn-beijing.aliyuncs.com"
            return Reply(exc.status, exc.to_xml(rid, host), "application/xml", {"x-oss-request-id": rid})
        except Exception:
            logger.exception("emulator error on %s %s", request.method, request.path)
            return self._error(rid, ApiError(500, "InternalError"))

    def _match(self, request: Request) -> tuple[_Route | None, dict[str, str]]:
        for route in self._routes:
            if route.method == request.method:
                match = route.pattern.fullmatch(request.path)
                if match:
                    return route, match.groupdict()
        return None, {}

    def _error(self, rid: str, exc: ApiError) -> Reply:
        with self.store.lock:
            self.store.counters.errors += 1
            if exc.status == 429:
                self.store.counters.throttled += 1
        return json_reply(exc.status, {"request_id": rid, "code": exc.code, "message": exc.message})

    def _authenticate(self, request: Request) -> str:
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

    def _inject(self, kind: str) -> None:
        with self.store.lock:
            self.store.counters.fault(kind)

    # -- DashScope API -----------------------------------------------------------------

    def create(self, request: Request, rid: str) -> Reply:
        with self.store.lock:
            self.store.counters.creates += 1
        api_key = self._authenticate(request)
        if request.header("x-dashscope-async").strip().lower() != "enable":
            raise ApiError(403, "AccessDenied", "current user api does not support synchronous calls")
        fault = self.injector.create_fault()
        if fault == "429":
            self._inject("create_429")
            raise ApiError.throttled()
        if fault == "5xx":
            self._inject("create_5xx")
            raise ApiError(500, "InternalError")
        if not self.submit_limit.admit():
            raise ApiError.throttled()
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            raise ApiError.invalid() from None
        spec = parse_create(body, self.config)
        resolve = request.header("x-dashscope-ossresourceresolve").strip().lower() == "enable"
        faults = self.injector.faults
        task = self._submit(spec, api_key, rid, resolve)
        output = {"task_status": task.status, "task_id": task.task_id}
        reply = json_reply(200, {"output": output, "request_id": rid})
        # The task exists from here on: these faults lose only its reply.
        if fault == "reply_reset":
            self._inject("create_reply_reset")
            return Reply(0, fault="reset")
        if fault == "reply_5xx":
            self._inject("create_reply_5xx")
            code, message = _REPLY_ERRORS[faults.create_reply_status]
            raise ApiError(faults.create_reply_status, code, message)
        if fault == "reply_stall":
            self._inject("create_reply_stall")
            self._wake.wait(faults.create_reply_stall_seconds)
        return reply

    def _submit(self, spec: CreateSpec, api_key: str, rid: str, resolve: bool) -> Task:
        """Data inspection of the inputs, then the task."""
        config = self.config
        image = self.fetcher.fetch(spec.img_url, limit=config.max_image_bytes, oss_resolve=resolve)
        rejection: tuple[str, str] | None = None
        key: RenderKey | None = None
        size: tuple[int, int] | None = None
        if len(image) > config.max_image_bytes:
            limit_mb = config.max_image_bytes / (1024 * 1024)
            rejection = ("InvalidParameter", f"The image file size exceeds the limit of {limit_mb:g}MB.")
        else:
            info = inspect_image(image)
            low, high = config.min_image_side, config.max_image_side
            if not (low <= info.width <= high and low <= info.height <= high):
                rejection = (
                    "InvalidParameter",
                    (
                        "The size is not match the requirement: the image sides must be within "
                        f"[{low}, {high}] pixels, got {info.width}x{info.height}."
                    ),
                )
            elif info.has_alpha and config.reject_alpha:
                rejection = ("InvalidParameter", "The image format is not supported: the image has an alpha channel.")
            else:
                size = output_size(info.width, info.height, spec.resolution)
                seed = spec.seed if spec.seed is not None else int(info.sha256[:8], 16) % (SEED_MAX + 1)
                key = RenderKey(info.sha256, *size, spec.duration, seed, spec.audio, config.render_mode)
        if spec.audio and spec.audio_url:
            sound = self.fetcher.fetch(spec.audio_url, limit=config.max_audio_bytes, oss_resolve=resolve)
            if len(sound) > config.max_audio_bytes:
                limit_mb = config.max_audio_bytes / (1024 * 1024)
                rejection = rejection or (
                    "InvalidParameter",
                    f"The audio file size exceeds the limit of {limit_mb:g}MB.",
                )
            else:
                inspect_audio(sound)

        def fate(number: int) -> tuple[tuple[str, str] | None, bool]:
            fails, early = self.injector.task_fate(number)
            code = self.injector.faults.failed_code
            if rejection is None and fails:
                self._inject("task_failed")
            elif rejection is None and early:
                self._inject("early_expiry")
            return ((code, failure_message(code)) if fails else None), early

        return self.store.create(
            spec,
            api_key=api_key,
            request_id=rid,
            output_size=size,
            render_key=key,
            rejection=rejection,
            fate=fate,
            start_render=lambda render_key: self.renders.submit(render_key, image),
        )

    def query(self, request: Request, rid: str, task_id: str) -> Reply:
        with self.store.lock:
            self.store.counters.queries += 1
        self._authenticate(request)
        fault = self.injector.query_fault()
        if fault == "503":
            self._inject("query_503")
            raise ApiError(503, "ServiceUnavailable")
        if fault == "504":
            self._inject("query_504")
            raise ApiError(504, "RequestTimeOut")
        if fault == "reset":
            self._inject("query_reset")
            return Reply(0, fault="reset")
        if not self.query_limit.admit():
            raise ApiError.throttled()
        with self.store.lock:
            task = self.store.get(task_id)
            if task is None:
                return json_reply(200, {"request_id": rid, "output": {"task_id": task_id, "task_status": "UNKNOWN"}})
            payload: dict[str, Any] = {"request_id": rid, "output": self.store.output(task)}
            usage = self.store.usage(task)
        if usage is not None:
            payload["usage"] = usage
        return json_reply(200, payload)

    def cancel(self, request: Request, rid: str, task_id: str) -> Reply:
        with self.store.lock:
            self.store.counters.cancels += 1
        self._authenticate(request)
        self.store.cancel(task_id)
        return json_reply(200, {"request_id": rid})

    def list_tasks(self, request: Request, rid: str) -> Reply:
        with self.store.lock:
            self.store.counters.lists += 1
        self._authenticate(request)
        if not self.query_limit.admit():
            raise ApiError.throttled()
        query = request.query
        try:
            page_no = int(query.get("page_no") or 1)
            page_size = int(query.get("page_size") or 10)
            start = self.clock.parse_compact(query["start_time"]) if query.get("start_time") else -math.inf
            end = self.clock.parse_compact(query["end_time"]) if query.get("end_time") else math.inf
        except ValueError:
            raise ApiError.invalid() from None
        if page_no < 1 or not 1 <= page_size <= 100:
            raise ApiError.invalid()
        wanted = {name: query.get(name) for name in ("status", "model_name", "api_key_id", "region")}
        rows = []
        for task in reversed(self.store.live_tasks()):
            row = self._list_row(task)
            if not start <= task.submit_at <= end:
                continue
            if any(value and str(row[name]) != value for name, value in wanted.items()):
                continue
            rows.append(row)
        total = len(rows)
        page = rows[(page_no - 1) * page_size : page_no * page_size]
        return json_reply(
            200,
            {
                "total": total,
                "data": page,
                "total_page": math.ceil(total / page_size),
                "page_no": page_no,
                "request_id": rid,
                "page_size": page_size,
            },
        )

    def _list_row(self, task: Task) -> dict[str, Any]:
        """One `data` entry, shaped like the captured list reply (reference §2.4)."""
        row: dict[str, Any] = {
            "api_key_id": task.api_key_id,
            "caller_parent_id": self.account_id,
            "caller_uid": self.account_id,
        }
        if task.end_at is not None:
            row["end_time"] = int(task.end_at * 1000)
        row["gmt_create"] = int(task.submit_at * 1000)
        row["model_name"] = task.spec.model
        row["region"] = REGION
        row["request_id"] = task.request_id
        if task.scheduled_at is not None:
            row["start_time"] = int(task.scheduled_at * 1000)
        row["status"] = task.status
        row["task_id"] = task.task_id
        row["user_api_unique_key"] = f"apikey:v1:{self.account_id}:{task.api_key_id}"
        return row

    def get_policy(self, request: Request, rid: str) -> Reply:
        with self.store.lock:
            self.store.counters.policies += 1
        self._authenticate(request)
        query = request.query
        if query.get("action") != "getPolicy" or not query.get("model"):
            raise ApiError.invalid()
        if not self.upload_limit.admit():
            raise ApiError.throttled()
        return json_reply(200, {"data": self.oss.policy(query["model"]), "request_id": rid})

    # -- OSS -------------------------------------------------------------------------------

    def upload(self, request: Request, rid: str) -> Reply:
        with self.store.lock:
            self.store.counters.uploads += 1
        status, etag = self.oss.upload(request.header("content-type"), request.body)
        headers = {"ETag": f'"{etag}"', "x-oss-request-id": rid, "Server": "AliyunOSS"}
        if status == 201:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse>\n'
                f"  <Bucket>{UPLOAD_BUCKET}</Bucket>\n  <ETag>&quot;{etag}&quot;</ETag>\n"
                "</PostResponse>\n"
            ).encode()
            return Reply(201, body, "application/xml", headers)
        return Reply(status, b"", None, headers)

    def download(self, request: Request, rid: str, key: str) -> Reply:
        with self.store.lock:
            self.store.counters.downloads += 1
        path = self.oss.open_result(key, request.query)
        size = path.stat().st_size
        stat = path.stat()
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": f'"{hashlib.md5(f"{path.name}{size}".encode()).hexdigest().upper()}"',
            "Last-Modified": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(stat.st_mtime)),
            "x-oss-request-id": rid,
            "x-oss-object-type": "Normal",
            "Server": "AliyunOSS",
        }
        span = _byte_range(request.header("range"), size)
        fault = self.injector.download_fault() if request.method == "GET" else None
        if fault == "corrupt":
            self._inject("corrupt_download")
            return Reply(200, corrupt_mp4(path.read_bytes()), "video/mp4", headers)
        if fault == "truncate":
            self._inject("truncate_download")
        status = 206 if span is not None else 200
        if span is not None:
            headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
        return Reply(status, b"", "video/mp4", headers, file=path, file_range=span, fault="truncate" if fault else None)

    # -- the emulator's own controls ----------------------------------------------------

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

    def wake(self) -> None:
        """Cut short every stalled create reply (the emulator is stopping)."""
        self._wake.set()
        self._wake = threading.Event()

    def counters_route(self, request: Request, rid: str) -> Reply:
        return json_reply(200, self.counters())

    def tasks_route(self, request: Request, rid: str) -> Reply:
        return json_reply(200, {"tasks": self.tasks()})

    def reset_route(self, request: Request, rid: str) -> Reply:
        self.reset()
        return json_reply(200, {"reset": True})

    def advance_route(self, request: Request, rid: str) -> Reply:
        try:
            seconds = float(request.query.get("seconds", "0"))
            self.clock.advance(seconds)
        except ValueError as exc:
            raise ApiError.invalid(str(exc)) from None
        return json_reply(200, {"now": self.clock.format(self.clock.now())})

    def faults_route(self, request: Request, rid: str) -> Reply:
        try:
            spec = json.loads(request.body or b"{}")
            self.set_faults(Faults.parse(spec))
        except (ValueError, TypeError) as exc:
            raise ApiError.invalid(str(exc)) from None
        return json_reply(200, {"faults": attrs.asdict(self.injector.faults)})

    def script_route(self, request: Request, rid: str) -> Reply:
        try:
            spec = json.loads(request.body or b"{}")
            if not isinstance(spec, dict) or set(spec) - {"fault", "times"} or "fault" not in spec:
                raise ValueError('expected {"fault": NAME, "times": N}')
            pending = self.script_faults(str(spec["fault"]), spec.get("times", 1))
        except (ValueError, TypeError) as exc:
            raise ApiError.invalid(str(exc)) from None
        return json_reply(200, {"scripted": pending})

    def health_route(self, request: Request, rid: str) -> Reply:
        return json_reply(200, {"ok": True, "model": self.config.model})


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a single `bytes=` range, None for the whole file."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or (not match[1] and not match[2]):
        return None  # not a single byte range: OSS then serves the whole object
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:
        start, end = max(0, size - int(match[2])), size - 1
    if start >= size or start > end:
        raise OssError(416, "InvalidRange", "The requested range cannot be satisfied.")
    return start, end


def corrupt_mp4(data: bytes) -> bytes:
    """Same length, but undecodable: the top-level `moov` box is renamed `free` and
    a stretch of the media data is scrambled."""
    out = bytearray(data)
    offset = 0
    while offset + 8 <= len(out):
        size = int.from_bytes(out[offset : offset + 4], "big")
        if out[offset + 4 : offset + 8] == b"moov":
            out[offset + 4 : offset + 8] = b"free"
        if size < 8:
            break
        offset += size
    middle = len(out) // 2
    for index in range(middle, min(len(out), middle + 4096)):
        out[index] ^= 0x5A
    return bytes(out)
