"""A route: a method and path pattern, the function that answers it, and its route set."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

import attrs

from .wire import Reply, Request

__all__ = ["Handler", "Route", "match", "route"]

#: `handler(service, request, request_id, **path_parameters) -> Reply`
Handler = Callable[..., Reply]
Kind = Literal["api", "oss", "control"]


@attrs.frozen
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    # "api" and "oss" routes meet network faults (slow replies); "control" routes never do.
    kind: Kind
    # The host an OSS error names (`<HostId>`), for "oss" routes.
    host: str | None = None


def route(method: str, pattern: str, handler: Handler, kind: Kind, host: str | None = None) -> Route:
    return Route(method, re.compile(pattern), handler, kind, host)


def match(routes: Sequence[Route], request: Request) -> tuple[Route | None, dict[str, str]]:
    """The first route for the request's method whose pattern matches its whole path."""
    for candidate in routes:
        if candidate.method == request.method:
            found = candidate.pattern.fullmatch(request.path)
            if found:
                return candidate, found.groupdict()
    return None, {}
