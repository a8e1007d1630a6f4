"""A scripted DashScope-shaped HTTP server on loopback, for replies the emulator does not make.

Each route answers from a queue of `Answer`s (the last one repeats): any status, code and
body, a non-JSON body, a connection reset after the request was read, or silence.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.frozen
class Answer:
    status: int = 200
    body: Any = None  # a JSON-able value, or bytes sent as text/plain
    fault: str | None = None  # "reset" (after reading the request) or "hang"
    headers: dict[str, str] = attrs.Factory(dict)
    delay: float = 0.0  # seconds before answering


def error(status: int, code: str, message: str = "", request_id: str = "rid-1", **headers: str) -> Answer:
    return Answer(status, {"code": code, "message": message or code, "request_id": request_id}, headers=headers)


def created(task_id: str = "task-1", delay: float = 0.0) -> Answer:
    body = {"output": {"task_id": task_id, "task_status": "PENDING"}, "request_id": "rid-create"}
    return Answer(200, body, delay=delay)


class ScriptedServer:
    def __init__(self) -> None:
        self.routes: dict[str, list[Answer]] = {"create": [], "query": [], "cancel": []}
        self.hits: dict[str, int] = {"create": 0, "query": 0, "cancel": 0}
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _route(self) -> str:
                if self.path.endswith("/video-synthesis"):
                    return "create"
                return "cancel" if self.path.rstrip("/").endswith("/cancel") else "query"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                route = self._route()
                server.hits[route] += 1
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                queue = server.routes[route]
                answer = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else Answer(404, {"code": "NotFound"}))
                if answer.fault == "reset":
                    # An RST, after the request was fully read: the classic "was it created?" case.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.rfile.close()
                    self.wfile.close()
                    self.connection.close()
                    self.wfile = io.BytesIO()  # http.server flushes it after we return
                    return
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.fault == "hang":
                    time.sleep(5)
                    return
                if isinstance(answer.body, bytes):
                    body, kind = answer.body, "text/plain"
                else:
                    body, kind = json.dumps(answer.body).encode(), "application/json"
                self.send_response(answer.status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = _answer
            do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/api/v1"


@contextmanager
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
