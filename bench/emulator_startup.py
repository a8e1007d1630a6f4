"""How cheap the DashScope emulator is to start, to talk to, and to render with.

Prints absolute times and ratios against the budgets the emulator promises (start
well under a second; a cached repeat task costs no render). Not a test: numbers
vary with the machine.

    .venv/bin/python bench/emulator_startup.py [--rounds 50]
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import time

import requests
from PIL import Image

from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig

START_BUDGET = 1.0  # seconds: "well under a second"


def _image_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 120, 200)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _task_seconds(emulator: DashScopeEmulator, session: requests.Session, uri: str) -> float:
    headers = {"Authorization": "Bearer sk-bench", "X-DashScope-Async": "enable"}
    body = {"model": "wan2.6-i2v-flash", "input": {"img_url": uri}, "parameters": {"resolution": "720P", "duration": 2}}
    began = time.perf_counter()
    created = session.post(
        f"{emulator.base_url}/services/aigc/video-generation/video-synthesis", json=body, headers=headers
    )
    task_id = created.json()["output"]["task_id"]
    while True:
        output = session.get(f"{emulator.base_url}/tasks/{task_id}", headers=headers).json()["output"]
        if output["task_status"] not in ("PENDING", "RUNNING"):
            assert output["task_status"] == "SUCCEEDED", output
            return time.perf_counter() - began
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()

    starts, stops, first_replies = [], [], []
    for _ in range(args.rounds):
        began = time.perf_counter()
        emulator = DashScopeEmulator(EmulatorConfig()).start()
        starts.append(time.perf_counter() - began)
        began = time.perf_counter()
        requests.get(f"{emulator.origin}/__emulator__/health", timeout=5)
        first_replies.append(time.perf_counter() - began)
        began = time.perf_counter()
        emulator.stop()
        stops.append(time.perf_counter() - began)

    def line(name: str, values: list[float]) -> None:
        p95 = sorted(values)[int(0.95 * (len(values) - 1))]
        print(
            f"{name:<16} median {statistics.median(values) * 1000:7.2f} ms   p95 {p95 * 1000:7.2f} ms   "
            f"p95 / {START_BUDGET:g} s budget = {p95 / START_BUDGET:.4f}"
        )

    print(f"{args.rounds} rounds")
    line("start", starts)
    line("first reply", first_replies)
    line("stop", stops)

    uri = _image_uri()
    config = EmulatorConfig(time_scale=0.0, queue_seconds=0.0, run_seconds=0.0, submit_rps=None, query_qps=None)
    with DashScopeEmulator(config) as emulator, requests.Session() as session:
        cold = _task_seconds(emulator, session, uri)
        warm = statistics.median(_task_seconds(emulator, session, uri) for _ in range(10))
    print(f"task, 720P 2 s   first (renders) {cold:6.3f} s   repeat (render cache) {warm * 1000:7.2f} ms")
    print(f"render cache speed-up: {cold / warm:.0f}x")


if __name__ == "__main__":
    main()
