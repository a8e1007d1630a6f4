"""Providers with one defect each, built on the preview provider, for the kit's self-test.

`LedgeredPreview` is the preview provider as a provider author would start from it, with
two things a sandbox gives the suite: an API key in its configuration (which must never
leak) and a ledger of the jobs it started (a server-side witness, like an emulator's
counter, independent of what `submit` returns). Each class below changes one thing, a
mistake a provider author could really make, and `DEFECTS` says which suite tests must
fail and what their report must say.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from reelgen import ProviderJob, RateLimited, ValidationError, VideoRequest
from reelgen_contracts import Sandbox
from reelgen_preview import PreviewProvider

KEY = "pk-preview-sandbox-5f2c9e61d0"

_ledger_lock = threading.Lock()
_LEDGER: set[str] = set()


def sandbox(work_dir: Path) -> Sandbox:
    """The preview "service": its work folder, its key, and the ledger of jobs it started."""

    def started() -> int:
        with _ledger_lock:
            return len(_LEDGER)

    return Sandbox(config={"work_dir": str(work_dir), "api_key": KEY}, billed_jobs=started)


class LedgeredPreview(PreviewProvider):
    """The preview provider with an API key and a ledger of the jobs it started (no defect)."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        config = dict(config or {})
        self.api_key = str(config.pop("api_key", ""))
        super().__init__(config)

    def _start(self, job: ProviderJob) -> None:
        with _ledger_lock:
            _LEDGER.add(job.task_id)  # the job exists (and would be billed) from here
        super()._start(job)


class StatsdPingInValidate(LedgeredPreview):
    """Sends a UDP metrics datagram (statsd) for every request it validates: network before validation."""

    def validate(self, request: VideoRequest) -> list[str]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"preview.validate:1|c", ("127.0.0.1", 8125))
        return super().validate(request)


class ResolvesEndpointInValidate(LedgeredPreview):
    """Looks up its service's host name while validating, "to fail fast when offline": a DNS query."""

    def validate(self, request: VideoRequest) -> list[str]:
        try:
            socket.getaddrinfo("localhost", 443)
        except OSError:
            pass
        return super().validate(request)


class UndeclaredPromptLimit(LedgeredPreview):
    """Refuses prompts over 2000 characters, though its capabilities declare no limit."""

    def validate(self, request: VideoRequest) -> list[str]:
        if len(request.prompt) > 2000:
            raise ValidationError("prompt: at most 2000 characters", field="prompt")
        return super().validate(request)


class IgnoresMotionStrength(LedgeredPreview):
    """Records motion_strength in the job (it is echoed back) but always renders the default motion."""

    def _render(self, job: ProviderJob, stop: threading.Event) -> None:
        params = {**job.data["params"], "motion_strength": 0.5}
        super()._render(attrs.evolve(job, data={**job.data, "params": params}), stop)


class ReportsUnusedSeed(LedgeredPreview):
    """Without a seed asked, renders with one random seed and reports another."""

    async def submit(self, request: VideoRequest) -> ProviderJob:
        job = await super().submit(request)
        if request.seed is None:
            job = attrs.evolve(job, seed=random.randint(0, 2**31 - 1))
        return job


class RendersInSubmit(LedgeredPreview):
    """Declares cancel='any', but submit() returns only when the render is done: nothing is left to cancel."""

    async def submit(self, request: VideoRequest) -> ProviderJob:
        job = await super().submit(request)
        with self._lock:
            future = self._renders[job.task_id]
        await asyncio.wrap_future(future)
        return job


class CancelsOnlyItsOwnJobs(LedgeredPreview):
    """Cancels only jobs this instance started: from another process (resume, then cancel), it says False."""

    async def cancel(self, job: ProviderJob) -> bool:
        with self._lock:
            mine = job.task_id in self._renders
        return await super().cancel(job) if mine else False


class PollsEagerly(LedgeredPreview):
    """Polls every millisecond, however long the job runs."""

    def poll_delay(self, job: ProviderJob, attempt: int, elapsed: float) -> float:
        return 0.001


class CreatesTwiceOnThrottle(LedgeredPreview):
    """Creates the job, then meets a 429 on the follow-up call and raises RateLimited: the core retries."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._seen: set[str] = set()

    async def submit(self, request: VideoRequest) -> ProviderJob:
        job = await super().submit(request)  # the job exists now, and is billed
        key = f"{request.prompt}|{request.seed}|{request.size}|{request.duration}|{request.fps}"
        if key not in self._seen:
            self._seen.add(key)
            raise RateLimited("429 Too Many Requests (reading the new job)", provider=self.name, retry_after=0.01)
        return job


class KeepsKeyInJob(LedgeredPreview):
    """Keeps its API key in the job's data, "so another process can authenticate when it resumes"."""

    async def submit(self, request: VideoRequest) -> ProviderJob:
        job = await super().submit(request)
        return attrs.evolve(job, data={**job.data, "auth": {"api_key": self.api_key}})


class KeepsImageBytesInJob(LedgeredPreview):
    """Keeps the reference image's bytes in the job's data: not JSON, so the journal cannot keep the job."""

    async def submit(self, request: VideoRequest) -> ProviderJob:
        job = await super().submit(request)
        image = request.reference_image if isinstance(request.reference_image, bytes) else b""
        return attrs.evolve(job, data={**job.data, "image_bytes": image})


class KeepsImageInMemory(LedgeredPreview):
    """Keeps the reference image in this instance only: resumed elsewhere, the job renders without it."""

    _memory: dict[str, str]

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._memory = {}

    def _start(self, job: ProviderJob) -> None:
        image = job.data["params"].get("image")
        if image:
            self._memory[job.task_id] = image
        super()._start(job)

    async def submit(self, request: VideoRequest) -> ProviderJob:
        job = await super().submit(request)
        return attrs.evolve(job, data={**job.data, "params": {**job.data["params"], "image": None}})

    def _render(self, job: ProviderJob, stop: threading.Event) -> None:
        params = {**job.data["params"], "image": self._memory.get(job.task_id)}
        super()._render(attrs.evolve(job, data={**job.data, "params": params}), stop)


class TruncatesLongVideos(LedgeredPreview):
    """Renders at most 120 frames (its encoder buffer), whatever the duration asked for."""

    def _render(self, job: ProviderJob, stop: threading.Event) -> None:
        params = dict(job.data["params"])
        params["duration"] = min(params["duration"], 120 / params["fps"])
        super()._render(attrs.evolve(job, data={**job.data, "params": params}), stop)


class FloatCanvas(LedgeredPreview):
    """Scales the reference image to cover the frame as a float32 canvas: a thin image becomes huge."""

    def _render(self, job: ProviderJob, stop: threading.Event) -> None:
        import numpy as np
        from PIL import Image

        params = job.data["params"]
        canvas = None
        if params["image"]:
            with Image.open(params["image"]) as image:
                scale = max(params["width"] / image.width, params["height"] / image.height)
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                canvas = np.asarray(image.convert("RGB").resize(size), dtype=np.float32) / 255.0
        try:
            super()._render(job, stop)
        finally:
            del canvas


@attrs.frozen
class PreviewDefect:
    provider: type[LedgeredPreview]
    tests: str
    because: str


DEFECTS: dict[str, PreviewDefect] = {
    # 1. network before validation, beyond TCP connect
    "statsd_ping_in_validate": PreviewDefect(
        StatsdPingInValidate, "test_valid_requests_are_accepted_offline", r"opened network connections.*sendto"
    ),
    "resolves_endpoint_in_validate": PreviewDefect(
        ResolvesEndpointInValidate, "test_construction_is_offline", r"validate\(\) opened connections.*lookup"
    ),
    # 2. prompts longer than an undeclared limit
    "undeclared_prompt_limit": PreviewDefect(
        UndeclaredPromptLimit, "test_valid_requests_are_accepted_offline", r"refused a request its capabilities allow"
    ),
    # 3. an option echoed but without effect on the video
    "ignores_motion_strength": PreviewDefect(
        IgnoresMotionStrength, "test_options_are_honoured", r"motion_strength \(tried"
    ),
    # 4. the seed reported for an unseeded request
    "reports_unused_seed": PreviewDefect(
        ReportsUnusedSeed, "test_seed_decides_the_video", r"report the seed actually used"
    ),
    # 5. cancel declared, never catchable
    "renders_in_submit": PreviewDefect(
        RendersInSubmit, "test_cancel_behaves_as_declared", r"can never be caught cancellable"
    ),
    "cancels_only_its_own_jobs": PreviewDefect(
        CancelsOnlyItsOwnJobs, "test_cancel_from_another_process", r"cancellable from any process that knows its id"
    ),
    # 6. polling
    "polls_eagerly": PreviewDefect(
        PollsEagerly,
        "test_implements_the_provider_protocol or (test_edge_requests_generate and many_frames)",
        r"poll_delay\(\) schedules \d+ polls|polled \d+ times",
    ),
    # 7. billing: a duplicate job behind a retried submit
    "creates_twice_on_throttle": PreviewDefect(
        CreatesTwiceOnThrottle, "test_edge_requests_generate and shortest", r"made 2 jobs in the sandbox"
    ),
    # 8. secrets
    "keeps_key_in_job": PreviewDefect(
        KeepsKeyInJob, "test_edge_requests_generate and shortest", r"configured credential .* appears in"
    ),
    # 9. persistence
    "keeps_image_bytes_in_job": PreviewDefect(
        KeepsImageBytesInJob, "test_deadline_then_resume_by_id and image and not no_image", r"is not JSON"
    ),
    "keeps_image_in_memory": PreviewDefect(
        KeepsImageInMemory,
        "test_deadline_then_resume_by_id and image and not no_image",
        r"lacks something the render needs",
    ),
    # 10. length
    "truncates_long_videos": PreviewDefect(
        TruncatesLongVideos, "test_edge_requests_generate and many_frames", r"more than one frame off"
    ),
    # 11. resources
    "float_canvas": PreviewDefect(
        FloatCanvas, "test_resources_are_bounded", r"memory grew by \d+ MiB|grew the process's peak memory"
    ),
}
