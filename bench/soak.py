"""A bounded fault soak of the money path: many `reelgen` processes, faults, kill -9, resume.

Runs against a standalone DashScope emulator (started here, in a temporary directory)
with seeded faults: 429s and 5xx on create, lost create replies (the task is created
and billed, then the reply is reset, answered 5xx, or stalls past the client's read
timeout), query 503s and resets, truncated and
corrupt downloads, URL expiries and failed tasks. Each generation is a real
`reelgen generate` child process sharing one job journal, cache and storage folder;
some are killed with SIGKILL at a random moment and then recovered the way a user
would: `reelgen jobs resume ID` when the journal lists the job, else the same
`reelgen generate` again (which adopts the orphan). A failure's advice is followed
(at most twice), as a user would: the `reelgen jobs resume ID` it names, or "generate
again" when the provider's task list proved nothing was created.

It prints:

- generations, succeeded, and the final error of the others by exit code;
- duplicate creates: tasks at the emulator for a request while another task for the
  same request was alive or delivered (target 0);
- billed tasks neither delivered nor recoverable (target 0 beyond the injected URL
  expiries, counted apart);
- corrupt files: every stored MP4 decoded with PyAV, and its sha256 checked against
  the journal (target 0).

    .venv/bin/python bench/soak.py [--generations 40] [--workers 4] [--kill-every 4] [--seed 7]

Bounded: each child has a timeout and the whole soak a time budget (`--budget`, 300 s).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from PIL import Image

from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig, Faults

FAULTS = Faults(
    seed=7,
    create_429=0.08,
    create_5xx=0.05,
    create_reply_reset=0.04,
    create_reply_5xx=0.04,
    create_reply_stall=0.03,  # the reply comes after the client's 5 s read timeout (below)
    create_reply_stall_seconds=8.0,
    query_503=0.05,
    query_reset=0.03,
    task_failed=0.05,
    truncate_download=0.08,
    corrupt_download=0.06,
    early_expiry=0.05,
)
ALIVE = {"PENDING", "RUNNING", "SUCCEEDED"}
CHILD_TIMEOUT = 120.0


class Soak:
    def __init__(self, root: Path, emulator: DashScopeEmulator, *, budget: float) -> None:
        self.root = root
        self.emulator = emulator
        self.deadline = time.monotonic() + budget
        self.image = root / "photo.jpg"
        Image.effect_noise((480, 270), 40).convert("RGB").save(self.image)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGEN_", "DASHSCOPE_"))}
        self.env.update(
            PYTHONUNBUFFERED="1",
            DASHSCOPE_HTTP_BASE_URL=emulator.base_url,
            DASHSCOPE_API_KEY="sk-soak-0123456789abcdef",
            REELGEN_PROVIDER="bailian_wan",
            REELGEN_STORAGE_URL=str(root / "videos"),
            REELGEN_CACHE_URL=f"sqlite:///{root / 'cache.db'}",
            REELGEN_JOBS_URL=f"sqlite:///{root / 'jobs.db'}",
            REELGEN_DEADLINE="120",
            REELGEN_PROVIDERS__BAILIAN_WAN__TIME_SCALE="0.01",
            REELGEN_PROVIDERS__BAILIAN_WAN__REQUEST_TIMEOUT="5",
        )
        self.lock = threading.Lock()
        self.commands: collections.Counter[str] = collections.Counter()
        self.kills = 0

    # -- running the CLI ---------------------------------------------------------------

    def start(self, *args: str) -> subprocess.Popen[str]:
        with self.lock:
            self.commands[" ".join(args[:2])] += 1
        return subprocess.Popen(
            [sys.executable, "-m", "reelgen", *args],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str, final: bool = False) -> tuple[int, str, str]:
        """Run the CLI; (exit code, stdout, stderr). -1: not started, the budget is spent; -9: timed out.

        `final` runs (the closing sweep and report) get a full child timeout whatever the budget.
        """
        remaining = self.deadline - time.monotonic()
        if not final and remaining <= 0:
            return -1, "", "(soak: budget spent, not run)"
        process = self.start(*args)
        timeout = CHILD_TIMEOUT if final else max(1.0, min(CHILD_TIMEOUT, remaining))
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            return -9, out, err + "\n(soak: timed out)"
        return process.returncode, out, err

    def journal(self, *, final: bool = False) -> list[dict[str, Any]]:
        code, out, err = self.run("jobs", "list", "--json", final=final)
        if code != 0 and not final:
            return []  # as a user would, fall back on running the generation again
        if code != 0:
            raise RuntimeError(f"reelgen jobs list failed ({code}): {err.strip()}")
        entries: list[dict[str, Any]] = json.loads(out)
        return entries

    # -- one generation, as a user would drive it ---------------------------------------

    def generation(self, number: int, prompt: str, seed: int, kill_after: float | None) -> tuple[int, str]:
        args = (
            "generate",
            str(self.image),
            "--prompt",
            prompt,
            "--seed",
            str(seed),
            "--duration",
            "2",
            "--size",
            "1280*720",
            "--json",
        )
        if time.monotonic() >= self.deadline:
            return -1, "(soak: budget spent, not run)"
        if kill_after is not None:
            process = self.start(*args)
            try:
                process.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                with self.lock:
                    self.kills += 1
            process.communicate()
            if process.returncode == 0:
                return 0, "finished before the kill"
            code, out, err = self.recover(number, prompt, seed, args)
        else:
            code, out, err = self.run(*args)
        for _ in range(2):  # follow what a failure says to do, as a user would
            command = _resume_field(out)
            if code != 0 and command is not None:
                code, out, err = self.run(*command.split()[1:], "--json")
            elif code != 0 and "generate again" in err:  # the journal proved nothing was created
                code, out, err = self.run(*args)
            else:
                break
        return code, _last_line(err)

    def recover(self, number: int, prompt: str, seed: int, args: tuple[str, ...]) -> tuple[int, str, str]:
        """After kill -9: `jobs resume` the journal's entry for this request (odd numbers), else generate again."""
        if number % 2:
            for entry in self.journal():
                request = entry.get("request") or {}
                if request.get("prompt") == prompt and request.get("seed") == seed and entry.get("resume"):
                    return self.run("jobs", "resume", entry["ref"], "--json")
        return self.run(*args)


def sweep(soak: Soak) -> dict[str, int]:
    """At the end, `reelgen jobs resume` every job the journal still offers to resume; exit codes counted."""
    codes: collections.Counter[int] = collections.Counter()
    for entry in soak.journal(final=True):
        if entry.get("resume"):
            code, _, _ = soak.run("jobs", "resume", entry["ref"], "--json", final=True)
            codes[code] += 1
    return {str(code): n for code, n in sorted(codes.items())}


def _resume_field(out: str) -> str | None:
    try:
        payload = json.loads(out)
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    command = error.get("resume") if isinstance(error, dict) else None
    return command if isinstance(command, str) and command.startswith("reelgen jobs resume ") else None


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _url_expired(url: str | None) -> bool:
    if not url:
        return False
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10):
            return False
    except urllib.error.HTTPError as exc:
        return exc.code == 403
    except OSError:
        return False


def _decodes(path: Path) -> bool:
    import av

    try:
        with av.open(str(path)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        return frames > 0
    except Exception:  # any decoder error means the file is corrupt
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _local(url: str) -> Path | None:
    from urllib.parse import unquote, urlparse

    if url.startswith("file://"):
        return Path(unquote(urlparse(url).path))
    return None if "://" in url else Path(url)


def report(soak: Soak, outcomes: list[tuple[int, str]], seconds: float) -> dict[str, Any]:
    tasks = soak.emulator.tasks()
    entries = soak.journal(final=True)
    by_task: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for entry in entries:
        if entry.get("task_id"):
            by_task[entry["task_id"]].append(entry)
        for candidate in entry.get("candidates") or ():
            by_task[candidate].append(entry)

    expired = {t["task_id"] for t in tasks if t["status"] == "SUCCEEDED" and _url_expired(t.get("video_url"))}

    # Duplicate creates: a task made while another task for the same request was alive and not lost to expiry.
    groups: dict[tuple[str, Any], list[dict[str, Any]]] = collections.defaultdict(list)
    for task in sorted(tasks, key=lambda t: t["number"]):
        groups[(task["input"].get("prompt", ""), task["parameters"].get("seed"))].append(task)
    duplicates = 0
    for group in groups.values():
        alive = [t for t in group if t["status"] in ALIVE and t["task_id"] not in expired]
        duplicates += max(0, len(alive) - 1)

    delivered = lost = lost_expired = recoverable = 0
    for task in tasks:
        if task["status"] != "SUCCEEDED":
            continue
        states = {entry["state"] for entry in by_task.get(task["task_id"], [])}
        if "succeeded" in states:
            delivered += 1
        elif states & {"delivery_failed", "unknown", "submitting", "queued", "running", "delivering"}:
            if task["task_id"] in expired:
                lost_expired += 1
            else:
                recoverable += 1
        elif task["task_id"] in expired:
            lost_expired += 1
        else:
            lost += 1

    recorded = {}
    for entry in entries:
        result = entry.get("result")
        if entry.get("state") == "succeeded" and result:
            path = _local(result["video_url"])
            if path is not None:
                recorded[path.resolve()] = result["sha256"]
    files = sorted((soak.root / "videos").rglob("*.mp4"))
    corrupt = [p for p in files if not _decodes(p) or (p.resolve() in recorded and _sha256(p) != recorded[p.resolve()])]
    missing = [p for p in recorded if not p.exists()]

    codes = collections.Counter(code for code, _ in outcomes if code != -1)
    counters = soak.emulator.counters()
    return {
        "generations": len(outcomes),
        "not_run_budget_spent": sum(1 for code, _ in outcomes if code == -1),
        "succeeded": codes.get(0, 0),
        "errors_by_exit_code": {str(code): n for code, n in sorted(codes.items()) if code != 0},
        "killed_with_sigkill": soak.kills,
        "cli_runs": dict(soak.commands),
        "tasks_created": len(tasks),
        "tasks_by_status": dict(collections.Counter(t["status"] for t in tasks)),
        "duplicate_creates": duplicates,
        "billed_tasks": sum(1 for t in tasks if t["status"] == "SUCCEEDED"),
        "billed_delivered": delivered,
        "billed_recoverable": recoverable,
        "billed_lost_to_injected_url_expiry": lost_expired,
        "billed_not_delivered_not_recoverable": lost,
        "stored_files": len(files),
        "corrupt_files": len(corrupt),
        "recorded_files_missing": len(missing),
        "journal_states": dict(collections.Counter(e["state"] for e in entries)),
        "faults_injected": counters.get("faults", {}),
        "seconds": round(seconds, 1),
        "sample_errors": sorted({line for code, line in outcomes if code not in (0, -1)})[:8],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generations", type=int, default=40)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--kill-every", type=int, default=4, help="SIGKILL every Nth generation (0: none).")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--budget", type=float, default=300.0, help="Seconds for the whole soak.")
    args = parser.parse_args()
    if not 1 <= args.generations <= 200 or not 1 <= args.workers <= 16:
        parser.error("keep it bounded: 1-200 generations, 1-16 workers")

    rng = random.Random(args.seed)
    distinct = max(1, int(args.generations * 0.8))  # a fifth repeat an earlier request: single-flight/cache
    plan = []
    for number in range(args.generations):
        request = number % distinct
        kill = rng.uniform(0.5, 4.0) if args.kill_every and number % args.kill_every == args.kill_every - 1 else None
        plan.append((number, f"soak take {request}", request, kill))

    config = EmulatorConfig(
        time_scale=0.01, queue_seconds=1.0, render_mode="still", faults=Faults(**{**_fields(FAULTS), "seed": args.seed})
    )
    with tempfile.TemporaryDirectory(prefix="reelgen-soak-") as scratch, DashScopeEmulator(config) as emulator:
        soak = Soak(Path(scratch), emulator, budget=args.budget)
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
            outcomes = list(pool.map(lambda item: soak.generation(*item), plan))
        # Let tasks created by killed children finish, so "billed" is final, then collect what is recoverable.
        _settle(emulator, until=soak.deadline)
        swept = sweep(soak)
        figures = report(soak, outcomes, time.monotonic() - started)
        figures["swept_with_jobs_resume"] = swept
    print(json.dumps(figures, indent=2))
    ok = figures["duplicate_creates"] == 0 and figures["billed_not_delivered_not_recoverable"] == 0
    ok = ok and figures["corrupt_files"] == 0 and figures["recorded_files_missing"] == 0
    print("targets met" if ok else "TARGETS MISSED", file=sys.stderr)
    return 0 if ok else 1


def _fields(faults: Faults) -> dict[str, Any]:
    import attrs

    return attrs.asdict(faults)


def _settle(emulator: DashScopeEmulator, *, until: float) -> None:
    while time.monotonic() < until and any(t["status"] in ("PENDING", "RUNNING") for t in emulator.tasks()):
        time.sleep(0.2)


if __name__ == "__main__":
    raise SystemExit(main())
