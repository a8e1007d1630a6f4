"""Progress on stderr: a rich status line on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

from ..events import Event

__all__ = ["ProgressReporter"]


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    minutes, seconds = divmod(int(value), 60)
    return f"{minutes}:{seconds:02d}"


class ProgressReporter:
    """An `on_event` callback that shows phase, elapsed time, time left and download bytes."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.started = time.monotonic()
        self.job_id: str | None = None
        self.remote_cancelled: bool | None = None
        self._live = sys.stderr.isatty() and not quiet
        self._progress: Any = None
        self._task: Any = None
        self._last_line = ""

    def __enter__(self) -> ProgressReporter:
        if self._live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[detail]}"),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("validating", total=1.0, detail="")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _show(self, phase: str, fraction: float | None = None, detail: str = "") -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.update(self._task, description=phase, completed=fraction or 0.0, detail=detail)
            return
        # Without a terminal, print a line when the phase changes, not on every tick.
        if phase != self._last_line:
            elapsed = _seconds(time.monotonic() - self.started)
            print(f"[{elapsed}] {phase} {detail}".rstrip(), file=sys.stderr, flush=True)
        self._last_line = phase

    def __call__(self, event: Event) -> None:
        data = event.data
        if event.job_id:
            self.job_id = event.job_id
        if event.kind == "submitted":
            self._show("submitted", 0.0, f"job {event.job_id}")
        elif event.kind == "status":
            self._show("generating", None, f"{data.get('raw_status') or data.get('state')}")
        elif event.kind == "progress" and data.get("phase") == "generating":
            eta = data.get("eta")
            detail = f"elapsed {_seconds(data.get('elapsed'))}" + (f", about {_seconds(eta)} left" if eta else "")
            self._show("generating", data.get("fraction"), detail)
        elif event.kind == "progress" and data.get("phase") == "downloading":
            total = data.get("total")
            got = data.get("bytes", 0)
            detail = f"{got / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB" if total else "")
            self._show("downloading", data.get("fraction"), detail)
        elif event.kind == "stored":
            self._show("stored", 1.0, str(data.get("video_url")))
        elif event.kind == "cache_hit":
            self._show("cache hit", 1.0, str(data.get("video_url")))
        elif event.kind == "cancelled":
            self.remote_cancelled = bool(data.get("remote_cancelled"))
