"""The emulator's own controls under `/__emulator__/` (no auth): counters, tasks, reset,
clock, faults, health. They never meet injected faults.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import attrs

from .config import Faults
from .errors import ApiError
from .routes import Route, route
from .wire import Reply, Request, json_reply

if TYPE_CHECKING:
    from .service import Service

__all__ = ["ROUTES"]


def counters(service: Service, request: Request, rid: str) -> Reply:
    return json_reply(200, service.counters())


def tasks(service: Service, request: Request, rid: str) -> Reply:
    return json_reply(200, {"tasks": service.tasks()})


def reset(service: Service, request: Request, rid: str) -> Reply:
    service.reset()
    return json_reply(200, {"reset": True})


def advance(service: Service, request: Request, rid: str) -> Reply:
    try:
        seconds = float(request.query.get("seconds", "0"))
        service.clock.advance(seconds)
    except ValueError as exc:
        raise ApiError.invalid(str(exc)) from None
    return json_reply(200, {"now": service.clock.format(service.clock.now())})


def faults(service: Service, request: Request, rid: str) -> Reply:
    try:
        spec = json.loads(request.body or b"{}")
        service.set_faults(Faults.parse(spec))
    except (ValueError, TypeError) as exc:
        raise ApiError.invalid(str(exc)) from None
    return json_reply(200, {"faults": attrs.asdict(service.injector.faults)})


def script(service: Service, request: Request, rid: str) -> Reply:
    try:
        spec = json.loads(request.body or b"{}")
        if not isinstance(spec, dict) or set(spec) - {"fault", "times"} or "fault" not in spec:
            raise ValueError('expected {"fault": NAME, "times": N}')
        pending = service.script_faults(str(spec["fault"]), spec.get("times", 1))
    except (ValueError, TypeError) as exc:
        raise ApiError.invalid(str(exc)) from None
    return json_reply(200, {"scripted": pending})


def health(service: Service, request: Request, rid: str) -> Reply:
    return json_reply(200, {"ok": True, "model": service.config.model})


ROUTES: list[Route] = [
    route("GET", r"/__emulator__/counters/?", counters, "control"),
    route("GET", r"/__emulator__/tasks/?", tasks, "control"),
    route("POST", r"/__emulator__/reset/?", reset, "control"),
    route("POST", r"/__emulator__/advance/?", advance, "control"),
    route("POST", r"/__emulator__/faults/?", faults, "control"),
    route("POST", r"/__emulator__/faults/script/?", script, "control"),
    route("GET", r"/__emulator__/health/?", health, "control"),
]
