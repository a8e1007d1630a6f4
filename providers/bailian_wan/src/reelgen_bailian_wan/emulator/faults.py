"""Deciding, deterministically, which requests and tasks meet an injected fault.

One random stream per decision kind, seeded from `Faults.seed`: the sequence of
create faults depends only on the sequence of creates, not on how many queries
happened in between. Per-task decisions use a stream keyed by the task's number.

A test can also script faults: `script("create_reply_reset", times=2)` makes the
next two creates meet that fault whatever the probabilities say. A scripted
request takes the script's fault instead of a random draw, and does not advance
the random stream, so scripting never shifts the seeded sequence that follows.
"""

from __future__ import annotations

import random
import threading
from collections import deque

from .config import Faults

__all__ = ["SCRIPTABLE", "FaultInjector"]

# `Faults` field -> (decision kind, the value that decision returns).
SCRIPTABLE: dict[str, tuple[str, str]] = {
    "create_429": ("create", "429"),
    "create_5xx": ("create", "5xx"),
    "create_reply_reset": ("create", "reply_reset"),
    "create_reply_stall": ("create", "reply_stall"),
    "create_reply_5xx": ("create", "reply_5xx"),
    "query_503": ("query", "503"),
    "query_504": ("query", "504"),
    "query_reset": ("query", "reset"),
    "truncate_download": ("download", "truncate"),
    "corrupt_download": ("download", "corrupt"),
}


class FaultInjector:
    def __init__(self, faults: Faults, scripts: dict[str, deque[str]] | None = None) -> None:
        self.faults = faults
        self._lock = threading.Lock()
        self._streams: dict[str, random.Random] = {}
        # Pending scripted faults per decision kind, as `Faults` field names, in order.
        self._scripts: dict[str, deque[str]] = scripts if scripts is not None else {}

    def script(self, fault: str, times: int = 1) -> None:
        """Make the next `times` requests of that fault's kind meet `fault`."""
        if fault not in SCRIPTABLE:
            raise ValueError(f"cannot script fault {fault!r}; scriptable: {', '.join(SCRIPTABLE)}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 0:
            raise ValueError(f"times must be an integer >= 0, got {times!r}")
        kind = SCRIPTABLE[fault][0]
        with self._lock:
            self._scripts.setdefault(kind, deque()).extend([fault] * times)

    def scripted(self) -> dict[str, list[str]]:
        """Scripted faults not yet met, per decision kind."""
        with self._lock:
            return {kind: list(queue) for kind, queue in self._scripts.items() if queue}

    def with_faults(self, faults: Faults) -> FaultInjector:
        """A fresh injector for `faults` that keeps the pending scripts."""
        with self._lock:
            return FaultInjector(faults, {kind: deque(queue) for kind, queue in self._scripts.items()})

    def _scripted(self, kind: str) -> str | None:
        with self._lock:
            queue = self._scripts.get(kind)
            return SCRIPTABLE[queue.popleft()][1] if queue else None

    def _draw(self, kind: str) -> float:
        with self._lock:
            stream = self._streams.get(kind)
            if stream is None:
                stream = self._streams[kind] = random.Random(f"{self.faults.seed}:{kind}")
            return stream.random()

    def _pick(self, kind: str, choices: list[tuple[str, float]]) -> str | None:
        scripted = self._scripted(kind)
        if scripted is not None:
            return scripted
        if not any(probability for _, probability in choices):
            return None
        draw = self._draw(kind)
        edge = 0.0
        for name, probability in choices:
            edge += probability
            if draw < edge:
                return name
        return None

    def create_fault(self) -> str | None:
        """The next create's fault: "429" or "5xx" (no task), "reply_reset",
        "reply_stall" or "reply_5xx" (task created, reply lost), or None."""
        f = self.faults
        return self._pick(
            "create",
            [
                ("429", f.create_429),
                ("5xx", f.create_5xx),
                ("reply_reset", f.create_reply_reset),
                ("reply_stall", f.create_reply_stall),
                ("reply_5xx", f.create_reply_5xx),
            ],
        )

    def query_fault(self) -> str | None:
        """ "503", "504", "reset" or None for the next task query."""
        f = self.faults
        return self._pick("query", [("503", f.query_503), ("504", f.query_504), ("reset", f.query_reset)])

    def download_fault(self) -> str | None:
        """ "truncate", "corrupt" or None for the next video download."""
        f = self.faults
        return self._pick("download", [("truncate", f.truncate_download), ("corrupt", f.corrupt_download)])

    def slow(self) -> float:
        """Seconds to stall the next request (0 for none)."""
        f = self.faults
        if f.slow_seconds <= 0 or f.slow_probability <= 0:
            return 0.0
        return f.slow_seconds if self._draw("slow") < f.slow_probability else 0.0

    def task_fate(self, number: int) -> tuple[bool, bool]:
        """(fails, url expires early) for the `number`-th task created."""
        f = self.faults
        stream = random.Random(f"{f.seed}:task:{number}")
        fails = stream.random() < f.task_failed
        expires_early = stream.random() < f.early_expiry
        return fails, expires_early
