"""Shared helpers for the emulator tests: images, a raw HTTP client, SDK pointing.

Tests reach the helpers through the `helpers` fixture (this module) rather than by
importing `conftest`, which is fragile when several test folders have one.
"""

from __future__ import annotations

import base64
import io
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import requests
from PIL import Image

from reelgen_bailian_wan.emulator import DashScopeEmulator

MODEL = "wan2.6-i2v-flash"
KEY = "sk-emulator-test-0123456789"
CREATE_PATH = "/services/aigc/video-generation/video-synthesis"


def image_bytes(size: tuple[int, int] = (320, 240), fmt: str = "PNG", mode: str = "RGB") -> bytes:
    color: Any = (30, 140, 220) if mode == "RGB" else (30, 140, 220, 128)
    image = Image.new(mode, size, color)
    # A little structure so the animated render has something to move over.
    for x in range(0, size[0], 16):
        for y in range(0, size[1], 16):
            if (x + y) // 16 % 2:
                image.putpixel((x, y), (250, 250, 250) if mode == "RGB" else (250, 250, 250, 255))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# The image most tests use: 320x240, rendered once per process (720P, 2 s).
IMAGE = image_bytes()
IMAGE_URI = data_uri(IMAGE)


def body(**parameters: Any) -> dict[str, Any]:
    """A valid, cheap create body; parameters override the defaults."""
    params: dict[str, Any] = {"resolution": "720P", "duration": 2}
    params.update(parameters)
    return {"model": MODEL, "input": {"prompt": "a cat", "img_url": IMAGE_URI}, "parameters": params}


class Api:
    """A raw HTTP client for the emulator, so tests see exact statuses and bodies."""

    def __init__(self, emulator: DashScopeEmulator) -> None:
        self.emulator = emulator
        self.base = emulator.base_url
        self.session = requests.Session()
        self.session.trust_env = False

    def headers(self, key: str | None = KEY, **extra: str) -> dict[str, str]:
        headers = {"X-DashScope-Async": "enable", "Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        headers.update(extra)
        return headers

    def create(
        self, payload: Any = None, *, headers: dict[str, str] | None = None, **parameters: Any
    ) -> requests.Response:
        payload = body(**parameters) if payload is None else payload
        return self.session.post(self.base + CREATE_PATH, json=payload, headers=headers or self.headers())

    def create_id(self, payload: Any = None, **parameters: Any) -> str:
        response = self.create(payload, **parameters)
        assert response.status_code == 200, response.text
        return str(response.json()["output"]["task_id"])

    def query(self, task_id: str, *, key: str | None = KEY) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.session.get(f"{self.base}/tasks/{task_id}", headers=headers)

    def output(self, task_id: str) -> dict[str, Any]:
        response = self.query(task_id)
        assert response.status_code == 200, response.text
        return dict(response.json()["output"])

    def cancel(self, task_id: str) -> requests.Response:
        return self.session.post(f"{self.base}/tasks/{task_id}/cancel", headers={"Authorization": f"Bearer {KEY}"})

    def wait(self, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            response = self.query(task_id)
            assert response.status_code == 200, response.text
            payload = response.json()
            if payload["output"]["task_status"] not in ("PENDING", "RUNNING"):
                return dict(payload)
            assert time.monotonic() < deadline, f"task {task_id} still {payload['output']['task_status']}"
            time.sleep(0.05)


def assert_error(response: requests.Response, status: int, code: str, message: str | None = None) -> dict[str, Any]:
    """A request-level error: status, JSON content type, code, message, request_id."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    payload = response.json()
    assert payload["code"] == code, payload
    assert payload["request_id"]
    if message is not None:
        assert payload["message"] == message, payload
    return dict(payload)


@pytest.fixture
def helpers() -> ModuleType:
    """This module: `helpers.body(...)`, `helpers.KEY`, `helpers.assert_error(...)`, ..."""
    return sys.modules[__name__]


@pytest.fixture
def api(dashscope_emulator: DashScopeEmulator) -> Iterator[Api]:
    client = Api(dashscope_emulator)
    yield client
    client.session.close()


@pytest.fixture
def sdk(dashscope_emulator: DashScopeEmulator) -> Iterator[DashScopeEmulator]:
    """Point the 1.x SDK's global base URL at the emulator, restored afterwards."""
    import dashscope

    saved = dashscope.base_http_api_url
    dashscope.base_http_api_url = dashscope_emulator.base_url
    try:
        yield dashscope_emulator
    finally:
        dashscope.base_http_api_url = saved


@pytest.fixture
def image_file(tmp_path: Any) -> Any:
    path = tmp_path / "first-frame.png"
    path.write_bytes(IMAGE)
    return path


@pytest.fixture
def static_server(tmp_path: Any) -> Iterator[tuple[str, Any]]:
    """A plain loopback HTTP server over a temp folder: (base URL, folder)."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


def wait_rendered(emulator: DashScopeEmulator, timeout: float = 30.0) -> None:
    """Block until every task's video is rendered (for exact, clock-driven timing tests)."""
    deadline = time.monotonic() + timeout
    while not all(task["rendered"] for task in emulator.tasks() if task["seed"] is not None):
        assert time.monotonic() < deadline, "renders did not finish"
        time.sleep(0.02)


TIMESTAMP = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$"


def parse_time(text: str) -> float:
    """A `YYYY-MM-DD HH:mm:ss.SSS` timestamp (UTC+8) to epoch seconds."""
    from datetime import datetime, timedelta, timezone

    moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone(timedelta(hours=8)))
    return moment.timestamp()
