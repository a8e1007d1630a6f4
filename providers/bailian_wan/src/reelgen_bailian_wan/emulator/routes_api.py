"""DashScope's task API: create, query, cancel and list tasks, and upload policies.

Order of checks on create, like a gateway in front of a service: auth, the async
header, injected faults, the submit rate limit, then the body, then the input media
(data inspection). Content problems the service only finds while generating
(pixel bounds, file size, alpha) are accepted here and end as a FAILED task.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

from .errors import ApiError, failure_message
from .inputs import inspect_audio, inspect_image
from .render import RenderKey, output_size
from .routes import Route, route
from .state import Task
from .validation import SEED_MAX, CreateSpec, parse_create
from .wire import Reply, Request, json_reply

if TYPE_CHECKING:
    from .service import Service

__all__ = ["API_PREFIX", "ROUTES"]

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


def create(service: Service, request: Request, rid: str) -> Reply:
    with service.store.lock:
        service.store.counters.creates += 1
    api_key = service.authenticate(request)
    if request.header("x-dashscope-async").strip().lower() != "enable":
        raise ApiError(403, "AccessDenied", "current user api does not support synchronous calls")
    fault = service.injector.create_fault()
    if fault == "429":
        service.inject("create_429")
        raise ApiError.throttled()
    if fault == "5xx":
        service.inject("create_5xx")
        raise ApiError(500, "InternalError")
    if not service.submit_limit.admit():
        raise ApiError.throttled()
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        raise ApiError.invalid() from None
    spec = parse_create(body, service.config)
    resolve = request.header("x-dashscope-ossresourceresolve").strip().lower() == "enable"
    faults = service.injector.faults
    task = _submit(service, spec, api_key, rid, resolve)
    output = {"task_status": task.status, "task_id": task.task_id}
    reply = json_reply(200, {"output": output, "request_id": rid})
    # The task exists from here on: these faults lose only its reply.
    if fault == "reply_reset":
        service.inject("create_reply_reset")
        return Reply(0, fault="reset")
    if fault == "reply_5xx":
        service.inject("create_reply_5xx")
        code, message = _REPLY_ERRORS[faults.create_reply_status]
        raise ApiError(faults.create_reply_status, code, message)
    if fault == "reply_stall":
        service.inject("create_reply_stall")
        service.stall(faults.create_reply_stall_seconds)
    return reply


def _submit(service: Service, spec: CreateSpec, api_key: str, rid: str, resolve: bool) -> Task:
    """Data inspection of the inputs, then the task."""
    config = service.config
    image = service.fetcher.fetch(spec.img_url, limit=config.max_image_bytes, oss_resolve=resolve)
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
        sound = service.fetcher.fetch(spec.audio_url, limit=config.max_audio_bytes, oss_resolve=resolve)
        if len(sound) > config.max_audio_bytes:
            limit_mb = config.max_audio_bytes / (1024 * 1024)
            rejection = rejection or (
                "InvalidParameter",
                f"The audio file size exceeds the limit of {limit_mb:g}MB.",
            )
        else:
            inspect_audio(sound)

    def fate(number: int) -> tuple[tuple[str, str] | None, bool]:
        fails, early = service.injector.task_fate(number)
        code = service.injector.faults.failed_code
        if rejection is None and fails:
            service.inject("task_failed")
        elif rejection is None and early:
            service.inject("early_expiry")
        return ((code, failure_message(code)) if fails else None), early

    return service.store.create(
        spec,
        api_key=api_key,
        request_id=rid,
        output_size=size,
        render_key=key,
        rejection=rejection,
        fate=fate,
        start_render=lambda render_key: service.renders.submit(render_key, image),
    )


def query(service: Service, request: Request, rid: str, task_id: str) -> Reply:
    with service.store.lock:
        service.store.counters.queries += 1
    service.authenticate(request)
    fault = service.injector.query_fault()
    if fault == "503":
        service.inject("query_503")
        raise ApiError(503, "ServiceUnavailable")
    if fault == "504":
        service.inject("query_504")
        raise ApiError(504, "RequestTimeOut")
    if fault == "reset":
        service.inject("query_reset")
        return Reply(0, fault="reset")
    if not service.query_limit.admit():
        raise ApiError.throttled()
    with service.store.lock:
        task = service.store.get(task_id)
        if task is None:
            return json_reply(200, {"request_id": rid, "output": {"task_id": task_id, "task_status": "UNKNOWN"}})
        payload: dict[str, Any] = {"request_id": rid, "output": service.store.output(task)}
        if task.end_at is not None and task.seen_end_at is None:
            task.seen_end_at = service.clock.now()
        usage = service.store.usage(task)
    if usage is not None:
        payload["usage"] = usage
    return json_reply(200, payload)


def cancel(service: Service, request: Request, rid: str, task_id: str) -> Reply:
    with service.store.lock:
        service.store.counters.cancels += 1
    service.authenticate(request)
    service.store.cancel(task_id)
    return json_reply(200, {"request_id": rid})


def list_tasks(service: Service, request: Request, rid: str) -> Reply:
    with service.store.lock:
        service.store.counters.lists += 1
    service.authenticate(request)
    if not service.query_limit.admit():
        raise ApiError.throttled()
    query = request.query
    try:
        page_no = int(query.get("page_no") or 1)
        page_size = int(query.get("page_size") or 10)
        start = service.clock.parse_compact(query["start_time"]) if query.get("start_time") else -math.inf
        end = service.clock.parse_compact(query["end_time"]) if query.get("end_time") else math.inf
    except ValueError:
        raise ApiError.invalid() from None
    if page_no < 1 or not 1 <= page_size <= 100:
        raise ApiError.invalid()
    wanted = {name: query.get(name) for name in ("status", "model_name", "api_key_id", "region")}
    rows = []
    for task in reversed(service.store.live_tasks()):
        row = _list_row(service, task)
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


def _list_row(service: Service, task: Task) -> dict[str, Any]:
    """One `data` entry, shaped like the captured list reply (reference §2.4)."""
    row: dict[str, Any] = {
        "api_key_id": task.api_key_id,
        "caller_parent_id": service.account_id,
        "caller_uid": service.account_id,
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
    row["user_api_unique_key"] = f"apikey:v1:{service.account_id}:{task.api_key_id}"
    return row


def get_policy(service: Service, request: Request, rid: str) -> Reply:
    with service.store.lock:
        service.store.counters.policies += 1
    service.authenticate(request)
    query = request.query
    if query.get("action") != "getPolicy" or not query.get("model"):
        raise ApiError.invalid()
    if not service.upload_limit.admit():
        raise ApiError.throttled()
    return json_reply(200, {"data": service.oss.policy(query["model"]), "request_id": rid})


_P = re.escape(API_PREFIX)
ROUTES: list[Route] = [
    route("POST", rf"{_P}/services/aigc/video-generation/video-synthesis/?", create, "api"),
    route("GET", rf"{_P}/tasks/?", list_tasks, "api"),
    route("GET", rf"{_P}/tasks/(?P<task_id>[^/]+)/?", query, "api"),
    route("POST", rf"{_P}/tasks/(?P<task_id>[^/]+)/cancel/?", cancel, "api"),
    route("GET", rf"{_P}/uploads/?", get_policy, "api"),
]
