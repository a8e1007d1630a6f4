"""`reelgen batch` against what a bare-SDK user writes, on the same 50 rows, against the emulator.

Both sides run the same rows (5 s at 720P each, one account each) against DashScope
emulators with the account's real limits (5 tasks at once, 5 creates and 20 queries a
second) on a scaled clock (`--scale`: 0.02 means 100 simulated seconds take 2 real ones);
everything with a clock is scaled alike (see bench/polling.py):

* the SDK side is `VideoSynthesis.call` per row in 50 threads, retrying a throttled create
  after a second, as in bench/polling.py part 2 (`call` creates, then `wait`s with the SDK's
  own polling);
* our side is `reelgen.batches.run_batch` over a plan of the same rows: the whole pipeline
  (journal, governor permits and rate windows, polling, download, MP4 check, storage,
  results file). The SDK side downloads nothing, so ours does strictly more work. It runs
  twice: with the defaults (5 at the provider, each freed slot refilled by the next row's
  create), and with `[limits.bailian_wan] queue_ahead = N` (`--queue-ahead`, default 5; 0
  skips it), which keeps N more created and waiting at the provider, as the SDK side's 50
  threads do (the emulator queues excess tasks, `concurrency_policy = "queue"`).

Reported per side: wall time against the floor (ceil(50 / 5) x the modeled run time + the
queue time), 429s it caused, status queries per task, and the completion-detection delay
(server `end_time` to the moment the client knew: `call` returning, or our `status`
event saying succeeded), median and p90, in simulated seconds.

Run: `.venv/bin/python bench/batch.py [--scale 0.02] [--rows 50]`. Bounded: at most 100 rows
a side, every wait has a deadline. The sides run one after the other so they do not share
this machine's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import polling  # the SDK side, the emulator set-up and the delay measure are shared

_DURATION, _TIER = 5, "720P"
_DEADLINE = 900.0


def _epoch(stamp: str) -> float:
    moment = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=polling._SERVICE_ZONE)
    return moment.timestamp()


def _slot_gaps(tasks: list[dict[str, Any]], scale: float) -> list[float]:
    """Simulated seconds each slot stayed idle: from the k-th task's end to the (k+5)-th create."""
    creates = sorted(_epoch(t["submit_time"]) for t in tasks)
    ends = sorted(_epoch(t["end_time"]) for t in tasks if t.get("end_time"))
    return [max(0.0, (creates[k + 5] - ends[k]) / scale) for k in range(min(len(ends), len(creates) - 5))]


def _our_side(scale: float, image: str, rows: int, scratch: Path, queue_ahead: int | None = None) -> dict[str, Any]:
    from reelgen.batches import io_threads, plan_batch, run_batch
    from reelgen.config import CacheConfig, Config, JobsConfig, StorageConfig
    from reelgen.contract import VideoRequest
    from reelgen.events import Event
    from reelgen.manifest import ManifestRow

    emulator = polling._emulator(scale)
    try:
        config = Config(
            provider="bailian_wan",
            storage=StorageConfig(url=str(scratch / "videos")),
            cache=CacheConfig(url="none"),
            jobs=JobsConfig(url=f"sqlite:///{scratch / 'jobs.db'}"),
            providers={"bailian_wan": {"base_url": emulator.base_url, "time_scale": scale}},
            limits={
                "bailian_wan": {
                    "concurrency": 5,
                    "submit_rate": 5 / scale,
                    "query_rate": 20 / scale,
                    **({"queue_ahead": queue_ahead} if queue_ahead else {}),
                }
            },
            deadline=_DEADLINE,
        )
        batch = [
            ManifestRow(
                id=f"row-{n}",
                request=VideoRequest(
                    # One prompt per row: identical requests would share one job (single-flight);
                    # the emulator still renders the video once (its render key has no prompt).
                    prompt=f"waves against a lighthouse, take {n}",
                    reference_image=image,
                    duration=_DURATION,
                    size="1280*720",
                    seed=polling._SEED,
                    options={"bailian_wan": {"resolution": _TIER}},
                ),
            )
            for n in range(rows)
        ]
        plan = plan_batch(batch, config=config)
        detected: dict[str, float] = {}

        def on_event(row_id: str, event: Event) -> None:
            if event.kind == "status" and event.data.get("state") == "succeeded" and event.job_id:
                detected.setdefault(event.job_id.split(":", 1)[1], event.at)

        async def run() -> list[Any]:
            # As `reelgen batch` does: threads for the blocking work of every row in flight.
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(io_threads(plan, config)))
            results = scratch / "results.jsonl"
            return [o async for o in run_batch(plan, config=config, results=results, on_event=on_event)]

        # Imported before the clock starts, as the SDK side's are (the first create would pay for it).
        import dashscope  # noqa: F401

        import reelgen_bailian_wan.sdk  # noqa: F401

        started = time.time()
        outcomes = asyncio.run(asyncio.wait_for(run(), _DEADLINE))
        wall = time.time() - started
        failed = [o for o in outcomes if o.result is None]
        tasks = {t["task_id"]: t for t in emulator.tasks()}
        counters = emulator.counters()
        return {
            "wall": wall / scale,
            "429": counters["throttled"],
            "queries": counters["queries"] / max(1, len(tasks)),
            "delays": [(seen - polling._end_epoch(tasks[task_id])) / scale for task_id, seen in detected.items()],
            "failed": len(failed),
            "tasks": len(tasks),
            "gaps": _slot_gaps(list(tasks.values()), scale),
        }
    finally:
        emulator.stop()


def _sdk_side(scale: float, image: str, rows: int) -> dict[str, Any]:
    emulator = polling._emulator(scale)
    try:
        side = polling.SdkSide(emulator.base_url, scale)
        started = time.time()
        done = polling._run_sdk(side, image, [(_DURATION, _TIER)] * rows, parallel=rows)
        wall = time.time() - started
        tasks = {t["task_id"]: t for t in emulator.tasks()}
        counters = emulator.counters()
        finished = [(task_id, seen) for task_id, seen in done if task_id]
        return {
            "wall": wall / scale,
            "429": counters["throttled"],
            "queries": counters["queries"] / max(1, len(tasks)),
            "delays": [(seen - polling._end_epoch(tasks[task_id])) / scale for task_id, seen in finished],
            "failed": len(side.failures),
            "tasks": len(tasks),
            "gaps": _slot_gaps(list(tasks.values()), scale),
        }
    finally:
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.02, help="time scale (0.02: 100 s take 2 s)")
    parser.add_argument("--rows", type=int, default=50, help="rows a side (at most 100)")
    parser.add_argument(
        "--queue-ahead",
        type=int,
        default=5,
        help="also run our side with [limits.bailian_wan] queue_ahead = N (0: only the default side)",
    )
    args = parser.parse_args()
    rows = max(1, min(args.rows, 100))
    os.environ.pop("DASHSCOPE_HTTP_BASE_URL", None)
    os.environ["DASHSCOPE_API_KEY"] = polling._KEY
    run = polling._modeled(_DURATION, _TIER)
    floor = math.ceil(rows / 5) * run + 1.0
    print(f"== {rows} rows ({_DURATION} s, {_TIER}; {run:.0f} s of running each), time scale {args.scale}")
    print(f"   floor from the concurrency limit: ceil({rows}/5) x {run:.0f} s + 1 s queue = {floor:.0f} s (simulated)")
    with tempfile.TemporaryDirectory() as scratch:
        image = polling._image(Path(scratch))
        started = time.time()
        sides = {"SDK  ": _sdk_side(args.scale, image, rows)}
        (Path(scratch) / "default").mkdir()
        sides["batch"] = _our_side(args.scale, image, rows, Path(scratch) / "default")
        ahead = f"batch, queue_ahead {args.queue_ahead}"
        if args.queue_ahead > 0:
            (Path(scratch) / "ahead").mkdir()
            sides[ahead] = _our_side(args.scale, image, rows, Path(scratch) / "ahead", args.queue_ahead)
        for name, data in sides.items():
            delays = data["delays"]
            median = statistics.median(delays) if delays else float("nan")
            p90 = polling._p90(delays) if delays else float("nan")
            print(
                f"   {name}: wall {data['wall']:.0f} s = {data['wall'] / floor:.3f} x floor; "
                f"429s caused {data['429']}; "
                f"status queries per task {data['queries']:.1f}; detection delay median {median:.2f} s, "
                f"p90 {p90:.2f} s; tasks {data['tasks']}, failed {data['failed']}"
            )
            gaps = data["gaps"]
            if gaps:
                print(
                    f"          a freed slot stayed idle: median {statistics.median(gaps):.2f} s, "
                    f"p90 {polling._p90(gaps):.2f} s, total {sum(gaps):.0f} s"
                )
        sdk = sides["SDK  "]
        for name in [name for name in sides if name.startswith("batch")]:
            ours = sides[name]
            print(f"   RATIO wall {name}/SDK = {ours['wall'] / sdk['wall']:.3f} (target <= 1.00)")
            print(f"   RATIO queries per task {name}/SDK = {ours['queries'] / sdk['queries']:.2f} (target <= 0.25)")
            if ours["delays"] and sdk["delays"]:
                print(
                    f"   RATIO detection delay {name}/SDK: median "
                    f"{statistics.median(ours['delays']) / statistics.median(sdk['delays']):.2f}, "
                    f"p90 {polling._p90(ours['delays']) / polling._p90(sdk['delays']):.2f} (target <= 1.00)"
                )
        print(f"\n(bench took {time.time() - started:.1f} s of real time)")


if __name__ == "__main__":
    main()
