"""A real HTTP file server on loopback, with switchable faults, for download tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs


@attrs.define
class Served:
    body: bytes
    #: Faults for the next requests, consumed in order: "500", "truncate", "reset", "404",
    #: "no_length" (no Content-Length header: the body ends when the connection closes).
    faults: list[str] = attrs.Factory(list)
    hits: int = 0
    content_type: str = "video/mp4"


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                served = server.files.get(self.path.split("?", 1)[0])
                if served is None:
                    self.send_error(404)
                    return
                served.hits += 1
                fault = served.faults.pop(0) if served.faults else None
                if fault == "500":
                    self.send_error(500)
                    return
                if fault == "404":
                    self.send_error(404)
                    return
                if fault == "reset":
                    self.connection.close()
                    return
                self.send_response(200)
                self.send_header("Content-Type", served.content_type)
                if fault != "no_length":
                    self.send_header("Content-Length", str(len(served.body)))
                self.end_headers()
                body = served.body[: len(served.body) // 2] if fault == "truncate" else served.body
                self.wfile.write(body)
                if fault == "truncate":
                    self.connection.close()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, body: bytes, faults: list[str] | None = None, content_type: str = "video/mp4") -> str:
        self.files[path] = Served(body, list(faults or []), content_type=content_type)
        return self.base_url + path


@contextmanager
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
