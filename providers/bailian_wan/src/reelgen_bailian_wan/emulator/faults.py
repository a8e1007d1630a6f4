"""Deciding, deterministically, which requests and tasks meet an injected fault.

One random stream per decision kind, seeded from `Faults.seed`: the sequence of
create faults depends only on the sequence of creates, not on how many queries
happened in between. Per-task decisions use a stream keyed by the task's number.
"""

from __future__ import annotations

import random
import threading

from .config import Faults

__all__ = ["FaultInjector"]


class FaultInjector:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._lock = threading.Lock()
        self._streams: dict[str, random.Random] = {}

    def _draw(self, kind: str) -> float:
        with self._lock:
            stream = self._streams.get(kind)
            if stream is None:
                stream = self._streams[kind] = random.Random(f"{self.faults.seed}:{kind}")
            return stream.random()

    def _pick(self, kind: str, choices: list[tuple[str, float]]) -> str | None:
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
        """ "429", "5xx" or None for the next create request."""
        f = self.faults
        return self._pick("create", [("429", f.create_429), ("5xx", f.create_5xx)])

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
