"""Three processes share one DashScope account through the core's governor, against the emulator.

The emulator enforces the account's real limits: 5 tasks at once (a 6th create is refused
with 429: `concurrency_policy = "reject"`), 5 creates and 20 queries per (real) second;
its task lifecycle runs on a scaled clock (`--scale`), and so does the provider's poll
schedule. Each worker process runs its share of the tasks all at once through
`reelgen.agenerate` (real provider, real dashscope SDK, real downloads and storage), with
one shared job journal, cache and `governor.db` in one directory, as processes on one
machine would.

Part 1, throughput: `--tasks` tasks (5 s, 720P) over `--processes` processes. Prints the
429s we caused (target 0: no injected faults, so every 429 is ours), creates against tasks
created, and the wall time from the go signal to the last stored video against the floor
set by the concurrency limit: ceil(tasks / 5) x (queue + run time). Target: within 10 %.

Part 2, `kill -9`: the same run; once the first worker has at least two tasks created,
it is killed with SIGKILL. Its permits must stay held (its tasks still run on the account)
and come back once its tasks end; a re-run of the killed worker's requests (as a user
would, or `reelgen jobs resume`) adopts the tasks it left instead of creating them again.
Prints the permits held at the kill, how long after each of its tasks ended its permit
came back, the permits in use at the end (target 0), and creates at the emulator (target:
exactly one per request: nothing submitted twice).

Run: `.venv/bin/python bench/governor.py [--tasks 30] [--processes 3] [--scale 0.05]`.
Bounded: `--tasks` tasks a part, every wait has a deadline (`--timeout`, per part).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "sk-bench-governor-0123456789abcdef"
LIMIT = 5
QUEUE_SECONDS = 1.0
RUN_SECONDS = 90.0  # the emulator's model of a 5 s 720P task


# -- a worker process ---------------------------------------------------------------------------


async def _work(seeds: list[int], image: str) -> None:
    import reelgen

    config = reelgen.load_config()

    def say(**data: Any) -> None:
        print(json.dumps({"t": time.time(), **data}), flush=True)

    async def one(seed: int) -> None:
        def seen(event: reelgen.Event) -> None:
            if event.kind in ("submitted", "attached", "retrying"):
                kept = {k: v for k, v in event.data.items() if k in ("task_id", "why", "step")}
                say(event=event.kind, n=seed, **kept)

        request = reelgen.VideoRequest(
            prompt="waves against a lighthouse", reference_image=image, duration=5, size="1280*720", seed=seed
        )
        try:
            result = await reelgen.agenerate(request, "bailian_wan", config=config, on_event=seen)
            say(event="done", n=seed, task_id=result.task_id)
        except reelgen.ReelgenError as exc:
            say(event="error", n=seed, error=f"{type(exc).__name__}: {exc}")

    say(event="ready")
    sys.stdin.readline()  # the go signal: every worker starts at once
    await asyncio.gather(*(one(seed) for seed in seeds))


# -- the parent ---------------------------------------------------------------------------------


class Worker:
    def __init__(self, name: str, seeds: list[int], env: dict[str, str], image: str) -> None:
        self.name, self.seeds = name, seeds
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps({"seeds": seeds, "image": image})],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []

    def read(self) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            return None
        event = json.loads(line)
        self.events.append(event)
        return event

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]


def _env(emulator: Any, workdir: Path, scale: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGEN_", "DASHSCOPE_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        DASHSCOPE_HTTP_BASE_URL=emulator.base_url,
        DASHSCOPE_API_KEY=API_KEY,
        REELGEN_STORAGE_URL=str(workdir / "videos"),
        REELGEN_CACHE_URL=f"sqlite:///{workdir / 'cache.db'}",
        REELGEN_JOBS_URL=f"sqlite:///{workdir / 'jobs.db'}",
        REELGEN_PROVIDERS__BAILIAN_WAN__TIME_SCALE=str(scale),
    )
    return env


def _start(names_seeds: list[tuple[str, list[int]]], env: dict[str, str], image: str) -> list[Worker]:
    workers = [Worker(name, seeds, env, image) for name, seeds in names_seeds]
    for worker in workers:
        event = worker.read()
        if event is None or event["event"] != "ready":
            raise RuntimeError(f"worker {worker.name} did not start: {event}")
    return workers


def _leases(workdir: Path) -> dict[str, str | None]:
    """token -> bound job id, straight from the governor's file (read-only)."""
    path = workdir / "governor.db"
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return dict(conn.execute("SELECT token, job_id FROM leases WHERE expires_at > ?", (time.time(),)))
        except sqlite3.OperationalError:  # not created yet
            return {}


def _finish(workers: list[Worker], deadline: float) -> None:
    """Read every worker to the end (they run concurrently; each read blocks on one line)."""
    import threading

    def drain(worker: Worker) -> None:
        while worker.read() is not None:
            pass

    threads = [threading.Thread(target=drain, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    for thread, worker in zip(threads, workers, strict=True):
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            worker.process.kill()
            raise SystemExit(f"worker {worker.name} did not finish in time")
        worker.process.wait(timeout=30)


def _split(seeds: list[int], parts: int) -> list[list[int]]:
    return [seeds[i::parts] for i in range(parts)]


def part1(emulator: Any, image: str, workdir: Path, tasks: int, processes: int, scale: float, timeout: float) -> bool:
    env = _env(emulator, workdir, scale)
    workers = _start([(f"w{i}", seeds) for i, seeds in enumerate(_split(list(range(tasks)), processes))], env, image)
    started = time.time()
    for worker in workers:
        worker.go()
    _finish(workers, time.monotonic() + timeout)
    done = [e for w in workers for e in w.of("done")]
    errors = [e for w in workers for e in w.of("error")]
    wall = max(e["t"] for e in done) - started if done else float("nan")
    floor = math.ceil(tasks / LIMIT) * (QUEUE_SECONDS + RUN_SECONDS) * scale
    counters = emulator.counters()
    print(f"== part 1: {tasks} tasks over {processes} processes, one account, time scale {scale}")
    print(f"   finished {len(done)} of {tasks}; errors {len(errors)}" + (f": {errors[0]['error']}" if errors else ""))
    print(f"   creates {counters['creates']}, tasks created {counters['tasks_created']}, queries {counters['queries']}")
    print(f"   429s caused: {counters['throttled']} (target 0)")
    each = (QUEUE_SECONDS + RUN_SECONDS) * scale
    print(f"   floor from the concurrency limit: ceil({tasks}/{LIMIT}) x {each:.2f} s = {floor:.2f} s")
    ratio = wall / floor
    submitted = {e["n"]: e["t"] for w in workers for e in w.of("submitted")}
    spans = sorted(e["t"] - submitted[e["n"]] for e in done if e["n"] in submitted)
    if spans:
        median = statistics.median(spans)
        print(f"   per task, create to stored video: median {median:.2f} s (service time {each:.2f} s)")
    print(f"   wall {wall:.2f} s = {ratio:.3f} x floor (target <= 1.10) {'OK' if ratio <= 1.10 else 'MISSED'}")
    print(f"   permits in use at the end: {len(_leases(workdir))} (target 0)")
    return counters["throttled"] == 0 and not errors and len(done) == tasks and ratio <= 1.10


def part2(emulator: Any, image: str, workdir: Path, tasks: int, processes: int, scale: float, timeout: float) -> bool:
    import threading

    emulator.reset()
    env = _env(emulator, workdir, scale)
    split = _split(list(range(1000, 1000 + tasks)), processes)
    workers = _start([(f"w{i}", seeds) for i, seeds in enumerate(split)], env, image)
    victim, others = workers[0], workers[1:]
    for worker in workers:
        worker.go()
    deadline = time.monotonic() + timeout
    while len(victim.of("submitted")) < 2:
        if victim.read() is None or time.monotonic() > deadline:
            raise SystemExit("the victim never got two tasks created")
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.wait(timeout=30)  # reaped: its pid is gone, so the journal sees the owner dead
    killed_at = time.time()
    victim_jobs = {f"bailian_wan:{e['task_id']}" for e in victim.of("submitted")}
    at_kill = _leases(workdir)
    bound = [job for job in at_kill.values() if job in victim_jobs]
    # Unbound permits: taken, create not yet named (the victim's, or a live worker's in flight).
    unbound = [token for token, job in at_kill.items() if job is None]
    print(f"== part 2: kill -9 of one of {processes} processes ({len(victim.seeds)} of {tasks} tasks) mid-run")
    print(
        f"   killed with {len(victim_jobs)} task(s) created; its bound permits still held: {len(bound)} "
        f"(unbound permits on the account at that moment: {len(unbound)})"
    )
    # A user re-runs the killed worker's requests (same requests: the journal adopts its tasks).
    reruns = [_start([("rerun", victim.seeds)], env, image)[0]]
    reruns[0].go()
    # Watch the victim's permits and its tasks' ends until everyone is done.
    ended_at: dict[str, float] = {}
    released_at: dict[str, float] = {}
    finisher = threading.Thread(target=_finish, args=([*others, reruns[0]], deadline), daemon=True)
    finisher.start()
    while finisher.is_alive() or len(released_at) < len(victim_jobs):
        now = time.time()
        statuses = {f"bailian_wan:{t['task_id']}": t["status"] for t in emulator.tasks()}
        for job in victim_jobs:
            if job not in ended_at and statuses.get(job) in ("SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"):
                ended_at[job] = now
        still = set(_leases(workdir).values())
        for job in victim_jobs:
            if job not in released_at and job not in still:
                released_at[job] = now
        if time.monotonic() > deadline:
            raise SystemExit("part 2 did not finish in time")
        time.sleep(0.05)
    finisher.join()
    # A request the killed process had journaled but not yet sent is refused on adoption
    # ("nothing was created: generate again"): the user runs those again, as told.
    for _ in range(3):
        again = sorted({e["n"] for e in reruns[-1].of("error")})
        if not again:
            break
        reruns.append(_start([("again", again)], env, image)[0])
        reruns[-1].go()
        _finish([reruns[-1]], deadline)
    counters = emulator.counters()
    seeds_created = [t["parameters"].get("seed") for t in emulator.tasks()]
    duplicates = len(seeds_created) - len(set(seeds_created))
    adopted = {e["n"] for e in reruns[0].of("attached") if e.get("why") == "adopted"}
    refused = {e["n"] for e in reruns[0].of("error")}
    early = [job for job in victim_jobs if released_at.get(job, 0) < ended_at.get(job, math.inf)]
    delays = [released_at[job] - ended_at[job] for job in victim_jobs if job in ended_at and job in released_at]
    done = {e["n"] for w in [*others, *reruns] for e in w.of("done")}
    errors = [e for w in [*others, reruns[-1]] for e in w.of("error")]
    print(
        f"   re-run adopted {len(adopted)} journal entries of the killed process: {len(victim_jobs)} created "
        f"task(s) followed to the end, {len(refused)} never sent refused with 'generate again'"
        + (f" (re-run {len(reruns) - 1} more time(s))" if len(reruns) > 1 else "")
    )
    first_error = f": {errors[0]['error']}" if errors else ""
    print(f"   finished {len(done)} of {tasks}; errors left {len(errors)}{first_error}")
    results: dict[str, set[int]] = {}
    for event in (e for w in [*others, *reruns] for e in w.of("done")):
        results.setdefault(event["task_id"], set()).add(event["n"])
    shared = sum(len(ns) for ns in results.values() if len(ns) > 1)
    print(f"   requests whose video is another request's task: {shared} (target 0)")
    print(f"   its permits came back before its task ended: {len(early)} (target 0)")
    if delays:
        print(
            f"   its permits came back after its tasks ended: median {statistics.median(delays):.2f} s, "
            f"max {max(delays):.2f} s (the adopter's next poll)"
        )
    left = _leases(workdir)
    dead_unbound = [token for token in left if token in unbound]
    print(
        f"   permits in use at the end: {len(left)}, of which unbound ones taken before the kill: {len(dead_unbound)} "
        f"(target: only those: a create may have been in flight, so they wait for their lease to expire)"
    )
    print(
        f"   creates {counters['creates']}, tasks created {counters['tasks_created']} for {tasks} requests; "
        f"submitted twice: {duplicates} (target 0); 429s caused: {counters['throttled']}"
    )
    print(f"   (killed at +{killed_at - min(e['t'] for e in victim.events):.2f} s into the run)")
    return (
        not early
        and duplicates == 0
        and counters["tasks_created"] == tasks
        and len(done) == tasks
        and len(left) == len(dead_unbound)
        and shared == 0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds each part may take at most")
    parser.add_argument("--parts", default="12", help="which parts to run (default: 12, both)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        asyncio.run(_work(spec["seeds"], spec["image"]))
        return

    from PIL import Image

    from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig

    begun = time.monotonic()
    config = EmulatorConfig(
        time_scale=args.scale,
        queue_seconds=QUEUE_SECONDS,
        run_seconds=RUN_SECONDS,
        render_mode="still",
        concurrency_policy="reject",
    )
    ok = True
    with (
        tempfile.TemporaryDirectory(prefix="reelgen-bench-governor-") as scratch,
        DashScopeEmulator(config) as emulator,
    ):
        image = str(Path(scratch) / "photo.jpg")
        # A 1280x720 JPEG (about 60 KB), sent inline as a data URI like a local file would be.
        photo = Image.linear_gradient("L").resize((1280, 720)).convert("RGB")
        photo.paste(Image.effect_noise((320, 180), 30).convert("RGB"), (480, 270))
        photo.save(image, quality=85)
        for number, part in enumerate((part1, part2), start=1):
            if str(number) not in args.parts:
                continue
            workdir = Path(scratch) / f"part{number}"
            workdir.mkdir()
            ok = part(emulator, image, workdir, args.tasks, args.processes, args.scale, args.timeout) and ok
            print()
    print(
        f"(bench took {time.monotonic() - begun:.1f} s of real time; {'all targets met' if ok else 'TARGETS MISSED'})"
    )


if __name__ == "__main__":
    main()
