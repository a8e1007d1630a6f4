"""A JSONL file written one whole line at a time and read back after a crash (a batch's results)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

__all__ = ["ResultsFile"]


class ResultsFile:
    """A JSONL file written one whole line at a time (O_APPEND, fsync), read back on a rerun.

    A crash can leave at most one torn last line; opening the file drops it, so what stays
    is always a valid prefix.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._lines = self._read_and_repair()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def _read_and_repair(self) -> list[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        if end < len(data):
            # A torn last line: the write it belongs to never finished.
            with self.path.open("r+b") as handle:
                handle.truncate(end)
        lines = []
        for raw in data[:end].splitlines():
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and isinstance(value.get("id"), str):
                lines.append(value)
        return lines

    @property
    def lines(self) -> list[dict[str, Any]]:
        return list(self._lines)

    def append(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._fd, data)
            os.fsync(self._fd)
            self._lines.append(line)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
