"""The running emulator: a threaded stdlib HTTP server on loopback around a `Service`.

`http.server` keeps start-up to a few milliseconds and no dependency, and gives the
socket-level control that the faults need (a TCP reset, a body cut short). HTTP/1.1
keep-alive is supported, since the SDKs reuse connections; `stop()` closes the
idle ones so no handler thread outlives the emulator.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import attrs

from .config import EmulatorConfig, Faults
from .routes_api import API_PREFIX
from .service import Service
from .wire import Reply, Request, json_reply, new_request_id

__all__ = ["DashScopeEmulator"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024  # larger bodies get 413 BadRequest.TooLarge
_CHUNK = 64 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_name = "istio-envoy"  # OSS replies say "AliyunOSS" (see _send)
    timeout = 120  # an idle keep-alive connection is dropped after this long
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle and
    # delayed ACKs add ~40 ms to every reply.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.connection, add=False)

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def version_string(self) -> str:
        return self.server_name

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines only (never headers, so never an API key).
        logger.debug("%s - %s", self.address_string(), format % args)

    def _read_body(self) -> bytes | None:
        """The request body, or None if it is too large (the reply is then 413)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts) if total <= MAX_BODY_BYTES else None
                total += size
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if total <= MAX_BODY_BYTES:
                    parts.append(chunk)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            # Read it anyway (and drop it) so the client gets to see the 413.
            while length > 0:
                dropped = self.rfile.read(min(_CHUNK, length))
                if not dropped:
                    break
                length -= len(dropped)
            return None
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        path, _, query = self.path.partition("?")
        body = self._read_body()
        if body is None:
            self.close_connection = True
            error = {"request_id": new_request_id(), "code": "BadRequest.TooLarge", "message": "Payload Too Large"}
            reply = attrs.evolve(json_reply(413, error), headers={"Connection": "close"})
        else:
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = Request(self.command, path, query, headers, body)
            reply = self.server.service.handle(request)
        try:
            self._send(reply)
        except ConnectionError:
            # The client hung up first (e.g. it timed out on a stalled create): nothing to tell it.
            self.close_connection = True

    def _send(self, reply: Reply) -> None:
        if reply.fault == "reset":
            # SO_LINGER 0 makes close() send a RST instead of a FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.rfile.close()
            self.connection.close()
            return
        if reply.file is not None:
            size = reply.file.stat().st_size
            start, end = reply.file_range or (0, size - 1)
            length = end - start + 1
        else:
            start, length = 0, len(reply.body)
        self.server_name = reply.headers.get("Server", "istio-envoy")
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(length))
        for name, value in reply.headers.items():
            if name != "Server":
                self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if reply.fault == "truncate":
            # Promise the whole body, deliver part of it, hang up.
            length //= 2
            self.close_connection = True
        if reply.file is None:
            self.wfile.write(reply.body[:length])
            return
        with reply.file.open("rb") as source:
            source.seek(start)
            while length > 0:
                chunk = source.read(min(_CHUNK, length))
                if not chunk:
                    break
                self.wfile.write(chunk)
                length -= len(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: Service) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.service = service
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class DashScopeEmulator:
    """A local DashScope video-synthesis service for `wan2.6-i2v-flash`.

    >>> with DashScopeEmulator(EmulatorConfig(time_scale=0.01)) as emu:  # doctest: +SKIP
    ...     dashscope.base_http_api_url = emu.base_url
    """

    def __init__(self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.host = host
        self._requested_port = port
        self.service = Service(self.config)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> DashScopeEmulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._server = _Server((self.host, self._requested_port), self.service)
        self.service.oss.origin = self.origin
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},  # how soon stop() returns
            name=f"dashscope-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.close_connections()
        server.server_close()
        self.service.wake()
        if thread is not None:
            thread.join(timeout=5)
        self.service.release_renders()

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> DashScopeEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"<DashScopeEmulator {where}>"

    # -- addresses -----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:PORT` (the host clients should use)."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What `dashscope.base_http_api_url` / `DASHSCOPE_HTTP_BASE_URL` take."""
        return f"{self.origin}{API_PREFIX}"

    # -- inspection and control for tests ----------------------------------------------

    def counters(self) -> dict[str, Any]:
        """creates, queries, cancels, lists, uploads, downloads, billed_seconds,
        throttled, tasks_by_status, ... (see docs/emulator.md)."""
        return self.service.counters()

    def tasks(self) -> list[dict[str, Any]]:
        """Every task as received and as it stands now (never the API key)."""
        return self.service.tasks()

    def reset(self) -> None:
        """Forget tasks, uploads and counters (the render cache stays)."""
        self.service.reset()

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward: tasks progress and URLs and ids expire."""
        self.service.clock.advance(seconds)

    def set_faults(self, faults: Faults) -> None:
        """Swap the fault injection of a running emulator (scripted faults stay)."""
        self.service.set_faults(faults)

    def script_faults(self, fault: str, times: int = 1) -> dict[str, list[str]]:
        """Make the next `times` requests of that fault's kind meet `fault` (a `Faults`
        field name, e.g. "create_reply_reset": the next creates make their task and
        lose the reply). Returns the scripted faults still pending, per kind."""
        return self.service.script_faults(fault, times)
