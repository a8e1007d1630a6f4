"""Helpers for the bailian_wan tests: images, requests, a provider aimed at an endpoint, a job driver."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

from PIL import Image

from reelgen.contract import VideoRequest
from reelgen.provider import JobStatus, ProviderJob
from reelgen_bailian_wan import BailianWanProvider, create_provider

#: The provider's clock scale in these tests: the emulator fixture's default time scale.
SCALE = 0.01
API_KEY = "sk-test-0123456789abcdef"


def jpeg(size: tuple[int, int] = (320, 240), color: tuple[int, int, int] = (200, 120, 40)) -> bytes:
    image = Image.effect_noise(size, 40).convert("RGB")
    image.paste(Image.new("RGB", (size[0] // 2, size[1] // 2), color))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def request(image: Any, **changes: Any) -> VideoRequest:
    fields: dict[str, Any] = {
        "prompt": "waves against a lighthouse",
        "duration": 2,
        "fps": 30,
        "size": "1280*720",
        "reference_image": image if image is None or isinstance(image, (bytes, str)) else str(image),
    }
    fields.update(changes)
    return VideoRequest(**fields)


def provider_for(endpoint: Any, **config: Any) -> BailianWanProvider:
    """A provider talking to `endpoint.base_url` (an emulator or a scripted server)."""
    settings: dict[str, Any] = {"base_url": endpoint.base_url, "time_scale": SCALE}
    settings.update(config)
    provider = create_provider(settings)
    assert isinstance(provider, BailianWanProvider)
    return provider


async def drive(provider: BailianWanProvider, job: ProviderJob, *, timeout: float = 30.0) -> tuple[JobStatus, int]:
    """Poll `job` on the provider's own schedule, as the core does; (final status, polls made)."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        delay = provider.poll_delay(job, attempt, time.time() - job.submitted_at)
        assert 0 <= delay < timeout
        await asyncio.sleep(delay)
        status = await provider.poll(job)
        attempt += 1
        if status.terminal:
            return status, attempt
        assert time.monotonic() < deadline, f"job {job.task_id} did not finish in {timeout} s"


def task(emulator: Any, task_id: str) -> dict[str, Any]:
    """The emulator's record of a task: what it received and where it stands."""
    return next(t for t in emulator.tasks() if t["task_id"] == task_id)
