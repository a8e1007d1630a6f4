"""What reelgen itself costs: import, CLI start-up, and the pipeline per generation.

Prints figures and ratios against targets (no assertions; CI keeps timing out of tests):
- `import reelgen` time, and that it imports none of dashscope, av, httpx;
- `reelgen --help` time;
- the pipeline's own overhead per generation (validate, job store, poll loop, download,
  PyAV check, atomic store, events) against a zero-latency in-process provider, as ms and
  as a share of a 1 s generation. Targets: < 5 ms and < 2 %.

Run: `.venv/bin/python bench/overhead.py` (or `make bench`).
"""

from __future__ import annotations

import asyncio
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("dashscope", "av", "httpx")


def _median_seconds(command: list[str], runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def import_cost() -> None:
    python = sys.executable
    bare = _median_seconds([python, "-c", "pass"])
    with_reelgen = _median_seconds([python, "-c", "import reelgen"])
    leaked = subprocess.run(
        [python, "-c", f"import sys, reelgen; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        f"import reelgen: {1000 * (with_reelgen - bare):.1f} ms over a bare interpreter "
        f"({1000 * with_reelgen:.1f} ms vs {1000 * bare:.1f} ms, ratio {with_reelgen / bare:.2f})"
    )
    print(f"heavy modules imported by `import reelgen`: {leaked or 'none'} (target: none)")
    help_time = _median_seconds([python, "-m", "reelgen", "--help"])
    print(f"reelgen --help: {1000 * help_time:.1f} ms (ratio to bare interpreter {help_time / bare:.2f})")


def _tiny_mp4(directory: Path) -> str:
    from PIL import Image

    from reelgen.render import render_video

    path = directory / "source.mp4"
    buffer = io.BytesIO()
    render_video(Image.new("RGB", (64, 64), (1, 2, 3)), buffer, width=64, height=64, fps=10, duration=1)
    path.write_bytes(buffer.getvalue())
    return path.as_uri()


class InstantProvider:
    """Answers every call at once: what remains is the pipeline's own cost."""

    name = "instant"

    def __init__(self, url: str) -> None:
        import reelgen

        self.url = url
        self.capabilities = reelgen.Capabilities(model="instant-1", size_multiple_of=2)
        self.count = 0

    def validate(self, request):  # type: ignore[no-untyped-def]
        return []

    async def submit(self, request):  # type: ignore[no-untyped-def]
        import reelgen

        self.count += 1
        return reelgen.ProviderJob(
            provider=self.name, model="instant-1", task_id=str(self.count), submitted_at=time.time(), seed=1
        )

    async def poll(self, job):  # type: ignore[no-untyped-def]
        import reelgen

        return reelgen.JobStatus(state="succeeded", output=reelgen.ProviderOutput(source_url=self.url, seed=1))

    async def cancel(self, job):  # type: ignore[no-untyped-def]
        return False

    def poll_delay(self, job, attempt, elapsed):  # type: ignore[no-untyped-def]
        return 0.0

    async def aclose(self) -> None:
        pass


def pipeline_cost(runs: int = 60) -> None:
    import reelgen
    from reelgen.config import CacheConfig, Config, JobsConfig, StorageConfig

    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        provider = InstantProvider(_tiny_mp4(root))
        config = Config(
            storage=StorageConfig(url=str(root / "videos")),
            cache=CacheConfig(url="none"),
            jobs=JobsConfig(url=f"sqlite:///{root / 'jobs.db'}"),
        )
        request = reelgen.VideoRequest(prompt="bench", duration=1, fps=10, size="64*64")

        async def many() -> list[float]:
            samples = []
            for index in range(runs):
                started = time.perf_counter()
                await reelgen.agenerate(request, provider, config=config, use_cache=False)
                samples.append(time.perf_counter() - started)
                del index
            return samples

        samples = asyncio.run(many())[5:]  # the first calls pay one-off imports
    median = statistics.median(samples)
    print(
        f"pipeline overhead per generation: {1000 * median:.2f} ms median over {len(samples)} runs "
        f"(target < 5 ms: ratio {1000 * median / 5:.2f}); "
        f"{100 * median / 1.0:.2f} % of a 1 s generation (target < 2 %: ratio {100 * median / 2:.2f})"
    )


if __name__ == "__main__":
    import_cost()
    pipeline_cost()
