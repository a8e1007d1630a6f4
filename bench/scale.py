"""Scale-out: Dramatiq workers on one Redis run a batch for two DashScope accounts, one worker killed.

Two emulators stand for two accounts, each with its real limits (5 tasks at once, a 6th
create refused with 429: `concurrency_policy = "reject"`; 5 creates and 20 queries per
real second) and its task lifecycle on a scaled clock (`--scale`; the provider's poll
schedule uses the same scale). A private `redis-server` on 127.0.0.1 holds the governor,
the job journal, the cache, the queue and the batch state. `--workers` worker processes
(`reelgen worker --processes 1`) take `--rows` rows, half for each account (account b is the
workers' `[accounts.b]`, with its own endpoint and key, so each account has its own
governor); once `--kill-after` tasks exist, one worker is killed with SIGKILL.

Prints, per account: the 429s we caused (target 0: no faults are injected, so every 429
is self-caused), creates per row (target exactly 1), rows lost (rows without a stored
video, target 0), the wall time from enqueue to the last row against the two-account
floor (each account runs its rows 5 at a time: ceil(rows/2/5) x (queue + run) x scale;
target within 15 %), and each worker's peak resident memory (VmHWM of its processes).

Run: `.venv/bin/python bench/scale.py [--rows 60] [--workers 3] [--scale 0.2]` (about 2 minutes).
Bounded: `--rows` rows, one `--timeout` for the whole run, every process stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

API_KEY = "sk-bench-scale-0123456789abcdef"
API_KEY_B = "sk-bench-scale-b-0123456789abcdef"
LIMIT = 5
QUEUE_SECONDS = 1.0
RUN_SECONDS = 90.0  # the emulator's model of a 5 s 720P task


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: apt-get update && apt-get install -y redis-server")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory), "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit("redis-server did not start")


def _memory_kib(pid: int) -> int:
    """Peak resident memory (VmHWM) of `pid`, in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def _explain(redis_url: str, namespace: str, prompt: str, emulator: Any) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    print(f"  row {prompt!r}: tasks {[t['task_id'] for t in emulator.tasks() if t['input'].get('prompt') == prompt]}")
    for key in client.scan_iter(f"{namespace}:journal:entry:*"):
        data = json.loads(client.hget(key, "data") or "{}")
        if data.get("request", {}).get("prompt") == prompt:
            keep = ("id", "state", "task_id", "error", "submitted_at", "updated_at", "owner")
            print("   ", {k: data.get(k) for k in keep})


def _timeline(emulator: Any, scale: float) -> str:
    """Where an account's time went, in real seconds: from the first create to the last task's
    end, the tasks' own time at the service (queued + running), and the gaps between one
    task's end and the create that took its slot (ordered by time, slot by slot), split into
    the end going unseen (until a query reported it) and the next create after that."""
    import datetime

    def at(text: str) -> float:
        return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").timestamp()

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2] if values else 0.0

    ended = [t for t in emulator.tasks() if t["end_time"]]
    spans = sorted((at(t["submit_time"]), at(t["end_time"])) for t in ended)
    if not spans:
        return "no task ended"
    first, last = spans[0][0], max(end for _, end in spans)
    ends = sorted(end for _, end in spans)
    seen = sorted(at(t["seen_end_time"]) for t in ended if t.get("seen_end_time"))
    unseen = [at(t["seen_end_time"]) - at(t["end_time"]) for t in ended if t.get("seen_end_time")]
    creates = sorted(start for start, _ in spans)[LIMIT:]  # each create after the first wave reuses a slot
    gaps = [create - end for create, end in zip(creates, ends, strict=False)]
    after_seen = [create - look for create, look in zip(creates, seen, strict=False)]
    busy = sum(end - start for start, end in spans) / LIMIT
    return (
        f"first create to last end {last - first:.1f} s, of which the tasks' own time {busy:.1f} s per slot; "
        f"slot hand-over median {median(gaps):.2f} s, max {max(gaps, default=0.0):.2f} s "
        f"(end unseen: median {median(unseen):.2f} s, max {max(unseen, default=0.0):.2f} s; "
        f"seen to next create: median {median(after_seen):.2f} s, max {max(after_seen, default=0.0):.2f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    # 0.2: a 91 s task takes 18 real seconds. The client's fixed costs are real seconds (a slot
    # hand-over about 0.4 s: the poll that sees the end, a message hop, the next upload and
    # create; noticing a killed worker, `requeue_after`): at 0.05 they weigh 20x what they
    # weigh against the real service, at 0.2 5x (docs/benchmarks.md has both).
    parser.add_argument("--scale", type=float, default=0.2, help="real seconds per simulated second")
    parser.add_argument("--kill-after", type=int, default=15, help="tasks created before one worker is killed")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()

    from PIL import Image

    from reelgen.cluster.batchstate import BatchState
    from reelgen.cluster.queued import enqueue_tasks
    from reelgen.cluster.work import overdue_after, task_for
    from reelgen.config import load_config
    from reelgen.contract import VideoRequest
    from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig

    work = Path(tempfile.mkdtemp(prefix="reelgen-bench-scale-"))
    redis_process, redis_url = _start_redis(work)
    emulator_config = EmulatorConfig(
        queue_seconds=QUEUE_SECONDS,
        run_seconds=RUN_SECONDS,
        time_scale=args.scale,
        concurrency_policy="reject",
        render_mode="still",
    )
    accounts = {"a": DashScopeEmulator(emulator_config).start(), "b": DashScopeEmulator(emulator_config).start()}
    config_file = work / "reelgen.toml"
    config_file.write_text(
        f"""
provider = "bailian_wan"
[storage]
url = "{work / "videos"}"
[cache]
url = "sqlite:///{work / "cache.db"}"
[jobs]
url = "sqlite:///{work / "jobs.db"}"
[cluster]
redis = "{redis_url}"
requeue_after = 3
[providers.bailian_wan]
time_scale = {args.scale}
# The local emulator answers in milliseconds: a create's timeout (and so how long an empty task
# list takes to prove a killed worker's create never landed) on the same compressed clock.
request_timeout = {max(5.0, 60.0 * args.scale)}
base_url = "{accounts["a"].base_url}"
[accounts.b]
provider = "bailian_wan"
base_url = "{accounts["b"].base_url}"
api_key_env = "BENCH_ACCOUNT_B_KEY"
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGEN_", "DASHSCOPE_"))}
    keys = {"REELGEN_CONFIG": str(config_file), "DASHSCOPE_API_KEY": API_KEY, "BENCH_ACCOUNT_B_KEY": API_KEY_B}
    env.update({**keys, "PYTHONPATH": str(ROOT)})
    os.environ.update(keys)
    image = work / "frame.jpg"
    Image.new("RGB", (480, 270), (40, 120, 200)).save(image)

    workers = []
    for index in range(args.workers):
        log = (work / f"worker-{index}.log").open("wb")
        workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "reelgen", "worker", "--processes", "1", "--threads", str(args.threads)],
                cwd=work,
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        )
    peaks = dict.fromkeys(range(args.workers), 0)
    config = load_config()
    batch = f"bench-{os.getpid()}"
    names = sorted(accounts)
    tasks = [
        task_for(
            batch,
            f"row-{i}",
            VideoRequest(prompt=f"a lighthouse at dusk, take {i}", duration=5, size="1280*720", reference_image=image),
            "bailian_wan",
            account=None if names[i % 2] == "a" else "b",  # the worker's [accounts.b]: its own key
        )
        for i in range(args.rows)
    ]
    from reelgen.cluster.tasks import send_row  # configures the broker from REELGEN_CONFIG

    time.sleep(2.0)  # let the workers start (their start-up is not what this measures)
    started = time.monotonic()
    enqueue_tasks(config, tasks)
    state = BatchState(redis_url, config.cluster.namespace, batch)
    killed: int | None = None
    give_up = started + args.timeout
    done: dict[str, dict[str, Any]] = {}
    finished_at = started
    by_row = {task.row: task for task in tasks}
    resent: list[str] = []
    swept = started
    try:
        while time.monotonic() < give_up:
            for index, worker in enumerate(workers):
                for pid in _group(worker.pid):
                    peaks[index] = max(peaks[index], _memory_kib(pid))
            created = sum(emulator.counters()["tasks_created"] for emulator in accounts.values())
            if killed is None and created >= args.kill_after:
                killed = 0
                os.killpg(workers[0].pid, signal.SIGKILL)
            if time.monotonic() - swept >= 5.0:  # what `reelgen batch --queue` does while it follows
                swept = time.monotonic()
                for row in state.overdue([t.row for t in tasks], time.time()):
                    resent.append(row)
                    send_row(by_row[row], config, seq=state.seq(row), ref=state.job(row))
            current = state.done()
            if len(current) > len(done):
                finished_at = time.monotonic()
            done = current
            if len(done) >= args.rows:
                break
            time.sleep(0.25)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
    wall = finished_at - started
    rows_per_account = math.ceil(args.rows / 2)
    floor = math.ceil(rows_per_account / LIMIT) * (QUEUE_SECONDS + RUN_SECONDS) * args.scale
    print(f"rows: {args.rows} over {args.workers} worker processes ({args.threads} threads each), 2 accounts")
    print(f"worker killed with SIGKILL: #{killed} after {args.kill_after} tasks were created")
    for name in names:
        emulator = accounts[name]
        counters = emulator.counters()
        rows = [t for i, t in enumerate(tasks) if names[i % 2] == name]
        prompts = [str(task.get("input", {}).get("prompt")) for task in emulator.tasks()]
        per_row = [prompts.count(str(t.request["prompt"])) for t in rows]
        print(
            f"account {name}: self-caused 429s {counters['throttled']}, creates {counters['tasks_created']} "
            f"for {len(rows)} rows (per row: min {min(per_row)}, max {max(per_row)})"
        )
        for row, count in zip(rows, per_row, strict=True):
            if count != 1:  # say what happened to it (never expected: a create too many is money)
                _explain(redis_url, config.cluster.namespace, str(row.request["prompt"]), emulator)
        print(f"  {_timeline(emulator, args.scale)}")
    succeeded = [line for line in done.values() if line.get("state") == "succeeded"]
    print(f"rows lost (no stored video): {args.rows - len(succeeded)}")
    print(f"rows whose lost step the follower sent again (overdue by {overdue_after(config):.0f} s): {len(resent)}")
    for line in done.values():
        if line.get("state") != "succeeded":
            print(f"  {line['id']}: {line.get('error')}: {str(line.get('message'))[:300]}")
    print(f"wall {wall:.1f} s, two-account floor {floor:.1f} s: {wall / floor:.3f}x the floor")
    for index in range(args.workers):
        note = " (killed)" if index == killed else ""
        print(f"worker {index}{note}: peak RSS {peaks[index] / 1024:.0f} MiB")
    print(json.dumps({"wall": wall, "floor": floor, "ratio": wall / floor, "lost": args.rows - len(succeeded)}))
    for emulator in accounts.values():
        emulator.stop()
    redis_process.terminate()
    redis_process.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
