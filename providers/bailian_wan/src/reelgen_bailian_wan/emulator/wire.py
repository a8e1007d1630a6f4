"""The request and reply values passed between the HTTP layer and the route handlers.

Keeping handlers free of `http.server` makes them plain functions of a `Request`,
and lets the HTTP layer own the socket-level tricks (streamed files, cut-off
bodies, connection resets).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

import attrs

__all__ = ["Reply", "Request", "json_reply", "new_request_id"]


def new_request_id() -> str:
    return str(uuid.uuid4())


@attrs.frozen
class Request:
    method: str
    path: str
    query_string: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    @property
    def query(self) -> dict[str, str]:
        """First value of each query parameter."""
        return {k: v[0] for k, v in parse_qs(self.query_string, keep_blank_values=True).items()}


@attrs.frozen
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    # A file to stream instead of `body`, optionally only `file_range` = (start, end) inclusive.
    file: Path | None = None
    file_range: tuple[int, int] | None = None
    # Socket-level faults: "reset" closes with a TCP RST and no reply; "truncate" sends
    # the full Content-Length but only part of the body, then closes.
    fault: Literal["reset", "truncate"] | None = None


def json_reply(status: int, payload: Mapping[str, Any], **headers: str) -> Reply:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Reply(status, body, "application/json", headers)
