"""The preview provider: what it renders, and that its jobs outlive the process that made them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import unquote, urlparse

import av
import numpy as np
import pytest

import reelgen
from reelgen.probe import probe_video


def _path(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="gray").astype(np.int16) for frame in container.decode(video=0)]


def test_without_an_image_it_animates_a_title_card(config):
    request = reelgen.VideoRequest(prompt="a title card", duration=1, fps=10, size="96*64", seed=3)
    result = reelgen.generate(request, provider="preview", config=config)
    probe = probe_video(_path(result.video_url), decode=True)
    assert (probe.width, probe.height, probe.frames, result.seed) == (96, 64, 10, 3)


@pytest.fixture
def textured(tmp_path) -> Path:
    """A picture with detail everywhere, so that any camera move shows."""
    from PIL import Image

    rng = np.random.default_rng(0)
    # Smooth blobs: detail a move reveals, without the noise an encoder blurs frame to frame.
    pixels = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
    path = tmp_path / "textured.png"
    Image.fromarray(pixels).resize((640, 480), Image.Resampling.BICUBIC).save(path)
    return path


def test_motion_strength_sets_how_far_the_camera_moves(config, textured):
    def first_to_last_change(strength: float) -> float:
        request = reelgen.VideoRequest(
            prompt="pan",
            reference_image=str(textured),
            duration=1,
            fps=10,
            size="128*96",
            seed=11,
            motion_strength=strength,
        )
        frames = _frames(_path(reelgen.generate(request, provider="preview", config=config).video_url))
        return float(np.abs(frames[0] - frames[-1]).mean())

    still, strong = first_to_last_change(0.0), first_to_last_change(1.0)
    # At 0 only encoding noise differs between the first and last frame; at 1 the view has moved.
    assert strong > 4 * still, (still, strong)


def test_the_audio_option_adds_a_track(config):
    request = reelgen.VideoRequest(prompt="hum", duration=1, fps=10, size="64*64", options={"preview": {"audio": True}})
    assert probe_video(_path(reelgen.generate(request, provider="preview", config=config).video_url)).has_audio


def test_a_job_started_in_one_process_is_finished_by_another(config, photo, tmp_path):
    # Process A submits a job that waits before rendering, and exits without waiting for it.
    script = textwrap.dedent(
        f"""
        import asyncio, reelgen
        from reelgen.config import CacheConfig, Config, JobsConfig, StorageConfig
        config = Config(storage=StorageConfig(url={config.storage.url!r}), cache=CacheConfig(url={config.cache.url!r}),
                        jobs=JobsConfig(url={config.jobs.url!r}),
                        providers={{"preview": {{"work_dir": {str(tmp_path / "work")!r}}}}})
        request = reelgen.VideoRequest(prompt="later", reference_image={str(photo)!r}, duration=1, fps=10,
                                       size="64*48", seed=5, options={{"preview": {{"render_delay": 60}}}})
        async def main():
            job = await reelgen.submit(request, provider="preview", config=config)
            print(job.id)
        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    job_id = done.stdout.strip().splitlines()[-1]
    assert job_id.startswith("preview:")

    # This process picks it up by id: the job store has its parameters and cache key.
    here = config.evolve(providers={"preview": {"work_dir": str(tmp_path / "work")}})
    job = reelgen.resume(job_id, config=here)
    assert job.request is not None and job.request.seed == 5
    # The render delay is part of the job; rather than wait a minute, check the job is
    # really being rendered here, then cancel it.
    status = __import__("asyncio").run(job.status())
    assert status.state in ("queued", "running")
    assert __import__("asyncio").run(job.cancel()) is True
