"""Our poll schedule against the SDK's own `VideoSynthesis.call` / `wait`, on the same workload.

Two DashScope emulators (one account each) run the same simulated workload side by side,
time-scaled by SCALE so that minutes of generation take seconds. Everything with a clock
is scaled alike, so each side behaves as it would against the real service:

* the emulators' queue and run times (`time_scale`), and their rate limits (5 creates and
  20 queries per simulated second, i.e. divided by SCALE);
* the SDK's sleeps in `wait()` (its `time` module is swapped for a scaled one, in this
  process only; the SDK code itself is untouched);
* our provider's schedule constants (`time_scale`) and its rate limits.

Part 1, polling: the same tasks (output 2-15 s, 720P and 1080P, at most 5 at once); per task,
queries made and completion-detection delay (from the server's `end_time` to the moment the
client knew), then ours/SDK ratios. Targets: at most 0.5x the queries, median delay no worse.

Part 2, 50 requests at once (5 s, 720P each): wall time against the floor set by the
account's concurrency limit (ceil(50 / 5) x the run time, plus the queue time), and the
429s each side caused. The SDK side is what a user of `VideoSynthesis.call` would write:
50 threads, retrying a throttled create after a second. Target: ours within 10% of the floor.
Neither side downloads the videos (that is the same work for both).

Part 3, the same 50 at real speed against the real limits (generation made near-instant):
scaled rate limits cannot reproduce a burst (threads start in real time), so this part
counts the 429s and failed requests each side's own burst causes.

Run: `.venv/bin/python bench/polling.py [--scale 0.01] [--tasks 20] [--burst 50] [--seed 1]`.
Bounded: at most --tasks + --burst tasks a side, and every wait has a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
import threading
import time
import types
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# The emulator stamps times in the service's zone (UTC+8), like the real service.
_SERVICE_ZONE = timezone(timedelta(hours=8))
_KEY = "sk-bench-not-a-real-key"
_DEADLINE = 600.0
#: One seed for every task on both sides: the emulator renders each distinct video once
#: (its render cache), so rendering on this machine's CPU does not stretch run times.
_SEED = 42


def _end_epoch(task: dict[str, Any]) -> float:
    moment = datetime.strptime(task["end_time"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=_SERVICE_ZONE)
    return moment.timestamp()


def _image(directory: Path) -> str:
    from PIL import Image

    path = directory / "bench.jpg"
    Image.effect_noise((480, 270), 50).convert("RGB").save(path, quality=80)
    return str(path)


def _emulator(scale: float) -> Any:
    from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig

    config = EmulatorConfig(
        time_scale=scale,
        queue_seconds=1.0,
        render_mode="still",
        submit_rps=5 / scale,
        query_qps=20 / scale,
        max_concurrent=5,
        concurrency_policy="queue",
    )
    return DashScopeEmulator(config).start()


# -- the SDK side --------------------------------------------------------------------------


class _ScaledTime(types.ModuleType):
    """What `dashscope.client.base_api` sees as `time`: sleeps shrink by `scale`."""

    def __init__(self, scale: float) -> None:
        super().__init__("time")
        self.scale = scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.scale)

    def time(self) -> float:
        return time.time()


class SdkSide:
    """`VideoSynthesis.call` per task in a thread, as the seed skill does it (with the right parameters)."""

    def __init__(self, base_url: str, scale: float) -> None:
        import dashscope
        from dashscope.client import base_api

        self.scale = scale
        self.queries: Counter[str] = Counter()
        self.throttled = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        # `call()` creates at base_address but polls the module global: set the global.
        dashscope.base_http_api_url = base_url
        base_api.time = _ScaledTime(scale)  # type: ignore[attr-defined]
        if not hasattr(base_api.AsyncTaskGetMixin, "_bench_original_get"):
            base_api.AsyncTaskGetMixin._bench_original_get = base_api.AsyncTaskGetMixin._get  # type: ignore[attr-defined]
        original = base_api.AsyncTaskGetMixin._bench_original_get.__func__  # type: ignore[attr-defined]
        side = self

        def counted(cls: Any, task_id: str, *args: Any, **kwargs: Any) -> Any:
            with side._lock:
                side.queries[task_id] += 1
            return original(cls, task_id, *args, **kwargs)

        base_api.AsyncTaskGetMixin._get = classmethod(counted)  # type: ignore[assignment]

    def run(self, image: str, duration: int, resolution: str) -> tuple[str, float]:
        """One generation; returns (task id, when `wait` returned)."""
        from dashscope import VideoSynthesis
        from dashscope.common.error import InvalidTask

        while True:
            try:
                response = VideoSynthesis.call(
                    model="wan2.6-i2v-flash",
                    prompt="waves against a lighthouse",
                    img_url=image,
                    duration=duration,
                    resolution=resolution,
                    seed=_SEED,
                    api_key=_KEY,
                )
            except InvalidTask as exc:  # the create failed: throttled at 5 per second
                if "429" not in str(exc) and "Throttling" not in str(exc):
                    raise
                with self._lock:
                    self.throttled += 1
                time.sleep(1.0 * self.scale)
                continue
            if response.status_code != 200 or response.output.task_status != "SUCCEEDED":
                # e.g. `wait()` hands back a 429 from a status query as the final answer.
                with self._lock:
                    self.failures.append(f"{response.status_code} {response.code}")
                return "", time.time()
            return response.output.task_id, time.time()


# -- our side -------------------------------------------------------------------------------


async def _ours(provider: Any, image: str, duration: int, resolution: str) -> tuple[str, float, int]:
    # The account limits, as the core's pipeline applies them (scaled with the emulator's clock).
    from reelgen.builtins.governor import governor_for
    from reelgen.governor import Limits, account_for

    global _GOVERNOR
    if _GOVERNOR is None:
        _GOVERNOR = governor_for(None)
    scale = provider.config.clock_scale
    limits = Limits(concurrency=5, submit_rate=5 / scale, query_rate=20 / scale)
    account, deadline_at = account_for(provider), time.monotonic() + _DEADLINE
    permit = await _GOVERNOR.acquire(account, limits, deadline_at=deadline_at)
    try:
        token = await _GOVERNOR.throttle(account, limits, "submit", deadline_at=deadline_at)
        return await _ours_with_permit(provider, image, duration, resolution, limits, deadline_at, token)
    finally:
        await permit.release()


_GOVERNOR: Any = None


async def _ours_with_permit(
    provider: Any, image: str, duration: int, resolution: str, limits: Any, deadline_at: float, token: Any
) -> tuple[str, float, int]:
    from reelgen.contract import VideoRequest
    from reelgen.governor import account_for

    request = VideoRequest(
        prompt="waves against a lighthouse",
        reference_image=image,
        duration=duration,
        size="1280*720",
        seed=_SEED,
        options={"bailian_wan": {"resolution": resolution}},
    )
    try:
        job = await provider.submit(request)
    finally:
        await token.done()
    attempt = 0
    while True:
        await asyncio.sleep(provider.poll_delay(job, attempt, time.time() - job.submitted_at))
        token = await _GOVERNOR.throttle(account_for(provider), limits, "query", deadline_at=deadline_at)
        try:
            status = await provider.poll(job)
        finally:
            await token.done()
        attempt += 1
        if status.terminal:
            if status.state != "succeeded":
                raise RuntimeError(f"our task ended {status}")
            return job.task_id, time.time(), attempt


def _provider(base_url: str, scale: float) -> Any:
    from reelgen_bailian_wan import create_provider

    return create_provider({"base_url": base_url, "time_scale": scale})


# -- running a workload on both sides -----------------------------------------------------------


def _run_sdk(side: SdkSide, image: str, workload: list[tuple[int, str]], parallel: int) -> list[tuple[str, float]]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = [pool.submit(side.run, image, d, r) for d, r in workload]
        return [future.result(timeout=_DEADLINE) for future in futures]


async def _run_ours(provider: Any, image: str, workload: list[tuple[int, str]]) -> list[tuple[str, float, int]]:
    # The account's concurrency limit (5, through the core's governor) is what bounds this side.
    runs = [_ours(provider, image, d, r) for d, r in workload]
    return await asyncio.wait_for(asyncio.gather(*runs), _DEADLINE)


def _side_by_side(
    scale: float, image: str, workload: list[tuple[int, str]], parallel: int, *, together: bool
) -> dict[str, Any]:
    """Run `workload` on both sides: at the same time (two accounts), or one after the other.

    The emulators share this process's CPU for rendering; `together=False` keeps one side's
    renders from slowing the other's tasks (it matters for wall times, not for polling).
    """
    import dashscope  # noqa: F401 - imported before any clock starts, for both sides

    sdk_emulator, our_emulator = _emulator(scale), _emulator(scale)
    try:
        side = SdkSide(sdk_emulator.base_url, scale)
        provider = _provider(our_emulator.base_url, scale)
        box: dict[str, Any] = {}

        def sdk_thread() -> None:
            started = time.time()
            box["sdk"] = _run_sdk(side, image, workload, parallel)
            box["sdk_wall"] = time.time() - started

        thread = threading.Thread(target=sdk_thread)
        thread.start()
        if not together:
            thread.join(_DEADLINE)
        started = time.time()
        ours = asyncio.run(_run_ours(provider, image, workload))
        our_wall = time.time() - started
        thread.join(_DEADLINE)
        sdk_tasks = {t["task_id"]: t for t in sdk_emulator.tasks()}
        our_tasks = {t["task_id"]: t for t in our_emulator.tasks()}
        return {
            "sdk": [
                (side.queries[task_id], (seen - _end_epoch(sdk_tasks[task_id])) / scale) for task_id, seen in box["sdk"]
            ],
            "ours": [(polls, (seen - _end_epoch(our_tasks[task_id])) / scale) for task_id, seen, polls in ours],
            "sdk_wall": box["sdk_wall"] / scale,
            "our_wall": our_wall / scale,
            "sdk_429": sdk_emulator.counters()["throttled"],
            "our_429": our_emulator.counters()["throttled"],
            "sdk_queries": sdk_emulator.counters()["queries"],
            "our_queries": our_emulator.counters()["queries"],
        }
    finally:
        sdk_emulator.stop()
        our_emulator.stop()


def _modeled(duration: int, resolution: str) -> float:
    from reelgen_bailian_wan.emulator.state import modeled_run_seconds

    return modeled_run_seconds(duration, resolution)


def polling(scale: float, tasks: int, seed: int, image: str) -> None:
    rng = random.Random(seed)
    workload = [(rng.choice([2, 3, 5, 8, 10, 12, 15]), rng.choice(["720P", "1080P"])) for _ in range(tasks)]
    print(f"== part 1: polling, {tasks} tasks (output 2-15 s, 720P/1080P), 5 at a time, time scale {scale}")
    print("   times below are simulated (service) seconds")
    data = _side_by_side(scale, image, workload, parallel=5, together=True)
    print(f"   {'task':>4} {'work':>10} {'run s':>6} | {'SDK q':>5} {'delay':>6} | {'ours q':>6} {'delay':>6}")
    for n, ((duration, tier), (sq, sd), (oq, od)) in enumerate(
        zip(workload, data["sdk"], data["ours"], strict=True), 1
    ):
        print(
            f"   {n:>4} {f'{duration}s {tier}':>10} {_modeled(duration, tier):>6.0f} | {sq:>5} {sd:>6.2f} |"
            f" {oq:>6} {od:>6.2f}"
        )
    sdk_q = [q for q, _ in data["sdk"]]
    our_q = [q for q, _ in data["ours"]]
    sdk_d = [d for _, d in data["sdk"]]
    our_d = [d for _, d in data["ours"]]
    q_ratio = sum(our_q) / sum(sdk_q)
    d_ratio = statistics.median(our_d) / statistics.median(sdk_d)
    print(f"   queries per task: SDK {statistics.mean(sdk_q):.1f}, ours {statistics.mean(our_q):.1f}")
    print(f"   detection delay (median s): SDK {statistics.median(sdk_d):.2f}, ours {statistics.median(our_d):.2f}")
    print(f"   detection delay (p90 s):    SDK {_p90(sdk_d):.2f}, ours {_p90(our_d):.2f}")
    print(f"   RATIO queries ours/SDK = {q_ratio:.2f} (target <= 0.50) {'OK' if q_ratio <= 0.5 else 'MISSED'}")
    print(f"   RATIO median delay ours/SDK = {d_ratio:.2f} (target <= 1.00) {'OK' if d_ratio <= 1.0 else 'MISSED'}")
    warm = our_q[5:]
    if warm:
        print(
            f"   after the first 5 tasks (history learned): ours {statistics.mean(warm):.1f} queries per task, "
            f"ratio {sum(warm) / sum(sdk_q[5:]):.2f}"
        )
    print(f"   429s caused: SDK {data['sdk_429']}, ours {data['our_429']}")


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


def burst(scale: float, count: int, image: str) -> None:
    duration, tier = 5, "720P"
    run = _modeled(duration, tier)
    floor = math.ceil(count / 5) * run + 1.0
    print(
        f"\n== part 2: {count} requests at once ({duration} s, {tier}; {run:.0f} s of running each), time scale {scale}"
    )
    data = _side_by_side(scale, image, [(duration, tier)] * count, parallel=count, together=False)
    print(f"   floor from the concurrency limit: ceil({count}/5) x {run:.0f} s + 1 s queue = {floor:.0f} s")
    for name, wall, throttled, queries in (
        ("SDK ", data["sdk_wall"], data["sdk_429"], data["sdk_queries"]),
        ("ours", data["our_wall"], data["our_429"], data["our_queries"]),
    ):
        print(f"   {name}: wall {wall:.0f} s = {wall / floor:.3f} x floor; 429s caused {throttled}; queries {queries}")
    ratio = data["our_wall"] / floor
    print(f"   RATIO our wall/floor = {ratio:.3f} (target <= 1.10) {'OK' if ratio <= 1.10 else 'MISSED'}")


def admission(count: int, image: str) -> None:
    """Part 3: the same burst at real speed against the documented limits (5 creates, 20 queries a second).

    Generation is made nearly instant (time scale 0.002) so this takes seconds, but every
    client clock and every limit is real: this is what each side's own burst does to an
    account. The SDK side's sleeps are the SDK's real ones.
    """
    from reelgen_bailian_wan import create_provider
    from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig

    print(f"\n== part 3: {count} requests at once at real speed, against 5 creates/s and 20 queries/s")
    config = EmulatorConfig(time_scale=0.002, queue_seconds=1.0, render_mode="still", concurrency_policy="queue")
    with DashScopeEmulator(config) as sdk_emulator, DashScopeEmulator(config) as our_emulator:
        side = SdkSide(sdk_emulator.base_url, 1.0)
        started = time.time()
        _run_sdk(side, image, [(5, "720P")] * count, parallel=count)
        sdk_wall = time.time() - started
        provider = create_provider({"base_url": our_emulator.base_url, "time_scale": 0.002})
        started = time.time()
        ours = asyncio.run(_run_ours(provider, image, [(5, "720P")] * count))
        our_wall = time.time() - started
        for name, emulator, failed, wall in (
            ("SDK ", sdk_emulator, len(side.failures), sdk_wall),
            ("ours", our_emulator, count - len(ours), our_wall),
        ):
            counters = emulator.counters()
            print(
                f"   {name}: 429s caused {counters['throttled']}, failed requests {failed} of {count}, "
                f"queries {counters['queries']}, wall {wall:.1f} s"
            )
        if side.failures:
            print(
                f"   SDK failures: {Counter(side.failures).most_common(3)} "
                "(wait() returns a throttled query as its answer)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.05, help="time scale (0.05: 100 s take 5 s)")
    parser.add_argument("--tasks", type=int, default=20, help="tasks in part 1 (at most 100)")
    parser.add_argument("--burst", type=int, default=50, help="requests at once in part 2 (at most 100)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    tasks, count = min(args.tasks, 100), min(args.burst, 100)
    os.environ.pop("DASHSCOPE_HTTP_BASE_URL", None)
    os.environ["DASHSCOPE_API_KEY"] = _KEY
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        image = _image(Path(scratch))
        started = time.time()
        if tasks:
            polling(args.scale, tasks, args.seed, image)
        if count:
            burst(args.scale, count, image)
            admission(count, image)
        print(f"\n(bench took {time.time() - started:.1f} s of real time)")


if __name__ == "__main__":
    sys.exit(main())
