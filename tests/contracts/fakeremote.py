"""A small remote video service on loopback, and a provider for it that honours the contract.

The contract kit's self-test needs a provider whose every behaviour it controls: this one
talks HTTP to `FakeService` (queue, render with PyAV, cancel, expiring download URLs,
faults on demand), declares honest capabilities, and passes the whole suite. The broken
providers in `broken.py` each change one thing about it.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
import urllib.request
import uuid
from collections.abc import Collection, Mapping
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs

from reelgen import (
    AuthenticationError,
    Capabilities,
    ContentRejected,
    JobStatus,
    OptionSpec,
    ProviderFailed,
    ProviderJob,
    ProviderOutput,
    ProviderRefused,
    QuotaExceeded,
    RateLimited,
    TaskExpired,
    TransientError,
    VideoRequest,
)
from reelgen.errors import ProviderError
from reelgen.images import is_remote, read_image
from reelgen.render import RenderStopped, render_video
from reelgen_contracts import ExpectedFault, Sandbox

NAME = "fakeremote"
KEY = "fake-key-1234"
URL_TTL = 3600.0

CAPABILITIES = Capabilities(
    model="fake-remote-1",
    duration_range=(0.5, 10.0),
    fps_range=(1.0, 60.0),
    side_range=(16, 640),
    size_multiple_of=2,
    requires_reference_image=False,
    image_formats=("JPEG", "PNG", "WEBP", "BMP"),
    image_max_bytes=2_000_000,
    image_side_range=(16, 2048),
    image_alpha=True,
    image_url_schemes=("http",),
    prompt_max_chars=500,
    prompt_overflow="reject",
    negative_prompt=False,
    seed=True,
    seed_range=(0, 2**31 - 1),
    deterministic=True,
    motion_strength=True,
    cancel="any",
    resume=True,
    result_url_ttl=URL_TTL,
    billed=True,
    options={
        "audio": OptionSpec(type="bool", default=False, doc="Add a soundtrack."),
        "quality": OptionSpec(type="str", choices=("draft", "final"), default="draft", doc="Encoder quality."),
    },
)


# -- the service -----------------------------------------------------------------------------


@attrs.define
class _Job:
    id: str
    params: dict[str, Any]
    status: str = "queued"
    code: str | None = None
    message: str | None = None
    file: str | None = None
    expires: float | None = None
    stop: threading.Event = attrs.Factory(threading.Event)


class FakeService:
    """The remote side: JSON over HTTP on 127.0.0.1, rendering with `reelgen.render.render_video`."""

    FAULTS = ("auth", "quota", "content", "failed", "expired", "transient", "rate_limited")

    def __init__(self, directory: Path, *, queue_seconds: float = 0.15) -> None:
        self.directory = directory
        self.queue_seconds = queue_seconds
        self.jobs: dict[str, _Job] = {}
        self.created = 0
        self.lock = threading.Lock()
        self.armed: str | None = None
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                service.handle(self, "GET")

            def do_POST(self) -> None:
                service.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- faults, as a reelgen_contracts FaultInjector ------------------------------------

    def kinds(self) -> Collection[str]:
        return self.FAULTS

    def arm(self, kind: str) -> ExpectedFault:
        self.armed = kind
        return {
            "auth": ExpectedFault(code="BadKey", message="the key is not valid"),
            "quota": ExpectedFault(code="NoCredit", message="the account has no credit left"),
            "content": ExpectedFault(code="Flagged", message="the output was flagged by moderation"),
            "failed": ExpectedFault(code="RenderCrashed", message="the renderer crashed"),
            "expired": ExpectedFault(),
            "transient": ExpectedFault(),
            "rate_limited": ExpectedFault(),
        }[kind]

    def disarm(self) -> None:
        self.armed = None

    def _take(self, *kinds: str) -> str | None:
        with self.lock:
            if self.armed in kinds:
                kind, self.armed = self.armed, None
                return kind
        return None

    def received(self, task_id: str) -> dict[str, Any] | None:
        job = self.jobs.get(task_id)
        if job is None:
            return None
        return {k: v for k, v in job.params.items() if k != "image"}

    def billed_jobs(self) -> int:
        return self.created

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, http: BaseHTTPRequestHandler, method: str) -> None:
        path = http.path.split("?", 1)[0]
        if path.startswith("/files/"):
            return self._file(http, path[len("/files/") :])
        if path == "/health":
            return self._reply(http, 200, {"ok": True})
        if http.headers.get("X-Key") != KEY or self._take("auth"):
            return self._reply(http, 401, {"code": "BadKey", "message": "the key is not valid"})
        length = int(http.headers.get("Content-Length") or 0)
        body = json.loads(http.rfile.read(length) or b"{}") if length else {}
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["jobs"]:
            return self._create(http, body)
        if len(parts) >= 2 and parts[0] == "jobs":
            job = self.jobs.get(parts[1])
            if job is None or self._take("expired"):
                return self._reply(http, 404, {"code": "NoSuchJob", "message": f"no job {parts[1]}"})
            if method == "POST" and parts[2:] == ["cancel"]:
                return self._cancel(http, job)
            if method == "GET" and len(parts) == 2:
                if self._take("transient"):
                    return self._reply(http, 503, {"code": "Busy", "message": "try again"})
                return self._reply(http, 200, self._view(job))
        return self._reply(http, 404, {"code": "NotFound", "message": path})

    def _reply(self, http: BaseHTTPRequestHandler, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        http.send_response(status)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(data)))
        http.end_headers()
        http.wfile.write(data)

    def _file(self, http: BaseHTTPRequestHandler, name: str) -> None:
        job = next((j for j in self.jobs.values() if j.file == name), None)
        path = self.directory / name
        if job is None or not path.is_file() or (job.expires is not None and time.time() > job.expires):
            self._reply(http, 410, {"code": "Expired", "message": "the URL has expired"})
            return
        data = path.read_bytes()
        http.send_response(200)
        http.send_header("Content-Type", "video/mp4")
        http.send_header("Content-Length", str(len(data)))
        http.end_headers()
        http.wfile.write(data)

    def _create(self, http: BaseHTTPRequestHandler, params: dict[str, Any]) -> None:
        if self._take("rate_limited"):
            return self._reply(http, 429, {"code": "Slow", "message": "too many requests"})
        if self._take("quota"):
            return self._reply(http, 402, {"code": "NoCredit", "message": "the account has no credit left"})
        width, height = params["width"], params["height"]
        if width % 2 or height % 2:
            return self._reply(http, 400, {"code": "InvalidParameter", "message": "sides must be even"})
        fate = self._take("failed", "content")
        job = _Job(id=uuid.uuid4().hex, params=params)
        if fate == "failed":
            job.code, job.message = "RenderCrashed", "the renderer crashed"
        elif fate == "content":
            job.code, job.message = "Flagged", "the output was flagged by moderation"
        with self.lock:
            self.jobs[job.id] = job
            self.created += 1
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return self._reply(http, 200, {"id": job.id, "status": job.status})

    def _run(self, job: _Job) -> None:
        if job.stop.wait(self.queue_seconds):
            return
        with self.lock:
            if job.status != "queued":
                return
            job.status = "running"
        if job.code is not None:
            job.status = "failed"
            return
        params = job.params
        image: Any
        if params.get("image_url"):
            with urllib.request.urlopen(params["image_url"], timeout=10) as response:
                image = response.read()
        elif params.get("image"):
            image = base64.b64decode(params["image"])
        else:
            from PIL import Image

            rng = random.Random(params["seed"])
            image = Image.new("RGB", (96, 72), tuple(rng.randrange(256) for _ in range(3)))
        name = f"{job.id}.mp4"
        temp = self.directory / f".{name}.tmp"
        try:
            render_video(
                image,
                temp,
                width=params["width"],
                height=params["height"],
                fps=params["fps"],
                duration=params["duration"],
                seed=params["seed"],
                motion_strength=params["motion"],
                audio=params["audio"],
                should_stop=job.stop.is_set,
            )
        except RenderStopped:
            temp.unlink(missing_ok=True)
            return
        if params.get("quality") == "final":
            with temp.open("ab") as out:
                out.write(b"\0\0\0\x08free")  # an MP4 'free' box: a different file, same video
        temp.replace(self.directory / name)
        with self.lock:
            if job.status == "running":
                job.file, job.expires, job.status = name, time.time() + URL_TTL, "succeeded"

    def _cancel(self, http: BaseHTTPRequestHandler, job: _Job) -> None:
        with self.lock:
            if job.status not in ("queued", "running"):
                return self._reply(http, 409, {"code": "NotCancellable", "message": f"the job is {job.status}"})
            job.status = "cancelled"
            job.stop.set()
        return self._reply(http, 200, {"id": job.id, "status": "cancelled"})

    def _view(self, job: _Job) -> dict[str, Any]:
        view: dict[str, Any] = {"id": job.id, "status": job.status, "seed": job.params["seed"]}
        if job.status == "succeeded":
            assert job.expires is not None
            view["video_url"] = f"{self.url}/files/{job.file}"
            view["expires_at"] = datetime.fromtimestamp(job.expires, timezone.utc).isoformat()
            view["usage"] = {"seconds": job.params["duration"]}
        if job.status == "failed":
            view["code"], view["message"] = job.code, job.message
        return view

    def sandbox(self) -> Sandbox:
        return Sandbox(
            config={"base_url": self.url},
            loopback=True,
            billed_jobs=self.billed_jobs,
            faults=self,
            received=self.received,
        )


# -- the provider ------------------------------------------------------------------------------


class FakeRemoteProvider:
    """Honours the contract against `FakeService`. Config: `base_url`."""

    name = NAME
    capabilities = CAPABILITIES

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.base_url = str(dict(config or {})["base_url"])

    # The parts a broken provider changes, one at a time.

    def validate(self, request: VideoRequest) -> list[str]:
        return []

    def wire_params(self, request: VideoRequest, seed: int) -> dict[str, Any]:
        options = request.options_for(self.name)
        params: dict[str, Any] = {
            "prompt": request.prompt,
            "duration": request.duration,
            "fps": request.fps,
            "width": request.width,
            "height": request.height,
            "seed": seed,
            "motion": 0.5 if request.motion_strength is None else request.motion_strength,
            "audio": bool(options.get("audio", False)),
            "quality": options.get("quality", "draft"),
        }
        reference = request.reference_image
        if reference is not None:
            if is_remote(reference):
                params["image_url"] = str(reference)
            else:
                params["image"] = base64.b64encode(read_image(reference).content).decode()
        return params

    def output(self, job: ProviderJob, view: Mapping[str, Any]) -> ProviderOutput:
        return ProviderOutput(
            source_url=view["video_url"], expires_at=view["expires_at"], usage=view["usage"], seed=view["seed"]
        )

    def failure(self, job: ProviderJob, view: Mapping[str, Any]) -> ProviderError:
        kind = ContentRejected if view["code"] == "Flagged" else ProviderFailed
        return kind(view["message"], provider=self.name, code=view["code"], task_id=job.task_id)

    # The provider protocol.

    async def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        import httpx

        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=30) as client:
                response = await client.request(method, path, json=body, headers={"X-Key": KEY})
        except httpx.TransportError as exc:
            raise TransientError(f"cannot reach the fake service: {exc}", provider=self.name) from exc
        return response.status_code, response.json()

    def _error(self, status: int, body: Mapping[str, Any], *, job: ProviderJob | None = None) -> ProviderError:
        kinds: dict[int, type[ProviderError]] = {
            401: AuthenticationError,
            402: QuotaExceeded,
            429: RateLimited,
            404: TaskExpired,
            400: ProviderRefused,
        }
        kind = kinds.get(status, TransientError if status >= 500 else ProviderFailed)
        return kind(
            body.get("message", ""),
            provider=self.name,
            code=body.get("code"),
            status_code=status,
            task_id=job.task_id if job else None,
        )

    async def submit(self, request: VideoRequest) -> ProviderJob:
        seed = request.seed if request.seed is not None else random.randint(0, 2**31 - 1)
        status, body = await self._call("POST", "/jobs", self.wire_params(request, seed))
        if status != 200:
            raise self._error(status, body)
        return ProviderJob(
            provider=self.name, model=CAPABILITIES.model, task_id=body["id"], submitted_at=time.time(), seed=seed
        )

    async def poll(self, job: ProviderJob) -> JobStatus:
        status, view = await self._call("GET", f"/jobs/{job.task_id}")
        if status != 200:
            raise self._error(status, view, job=job)
        state = view["status"]
        if state == "failed":
            raise self.failure(job, view)
        if state == "succeeded":
            return JobStatus(state="succeeded", raw_status=state, progress=1.0, output=self.output(job, view))
        return JobStatus(state=state, raw_status=state)

    async def cancel(self, job: ProviderJob) -> bool:
        status, _ = await self._call("POST", f"/jobs/{job.task_id}/cancel")
        return status == 200

    def poll_delay(self, job: ProviderJob, attempt: int, elapsed: float) -> float:
        return min(0.3, 0.02 * 2 ** min(attempt, 10))  # bounded exponent: a job may be polled for hours

    async def aclose(self) -> None:
        pass
