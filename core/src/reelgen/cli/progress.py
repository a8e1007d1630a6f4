"""Progress on stderr that says what is really happening: a rich line on a terminal, plain lines otherwise.

Both displays name the real state: waiting for a slot (with how many are in use), queued at
the provider, running, retrying (and why), downloading. Without a terminal (CI, logs, a
pipe) each state change is one line, and a heartbeat line follows at least every
`HEARTBEAT` seconds, so a silent log never means a hung process.

* `ProgressReporter`: one generation (`reelgen generate`, `reelgen jobs resume`).
* `BatchReporter`: a batch (`reelgen batch`): rows done / running / queued / waiting /
  failed, spend against the budget, and an ETA learned per provider and tier.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..events import Event

if TYPE_CHECKING:
    from ..batches import BatchProgress

__all__ = ["HEARTBEAT", "BatchReporter", "ProgressReporter", "describe_wait"]

#: Longest silence without a terminal, in seconds.
HEARTBEAT = 30.0


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def describe_wait(data: Any) -> str:
    """`waiting` event data as words: "waiting for a slot: 5/5 in use"."""
    what = {"slot": "a slot", "submit_rate": "the submit rate limit", "query_rate": "the query rate limit"}
    reason = str(data.get("reason"))
    text = f"waiting for {what.get(reason, reason)}"
    in_use, limit = data.get("in_use"), data.get("limit")
    if in_use is not None and limit is not None:
        text += f": {in_use}/{limit} in use"
    return text


def describe_retry(data: Any) -> str:
    """`retrying` event data as words: "retrying submit (attempt 2) in 1.0 s: connection reset"."""
    delay = data.get("delay")
    when = f" in {float(delay):.1f} s" if isinstance(delay, (int, float)) else ""
    return f"retrying {data.get('step', '')} (attempt {data.get('attempt', '?')}){when}: {data.get('reason', '')}"


class _Lines:
    """Plain lines on stderr: printed on change, and a heartbeat after `heartbeat` s of silence."""

    def __init__(self, heartbeat: float, status: Any) -> None:
        self.started = time.monotonic()
        self._heartbeat = heartbeat
        self._status = status
        self._last_print = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._beat, name="reelgen-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def print(self, text: str) -> None:
        with self._lock:
            elapsed = _seconds(time.monotonic() - self.started)
            print(f"[{elapsed}] {text}".rstrip(), file=sys.stderr, flush=True)
            self._last_print = time.monotonic()

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self._heartbeat / 4)):
            if time.monotonic() - self._last_print >= self._heartbeat:
                self.print(f"still {self._status()}")


class ProgressReporter:
    """An `on_event` callback for one generation: its real phase, elapsed time, time left, bytes."""

    def __init__(self, *, quiet: bool = False, heartbeat: float = HEARTBEAT) -> None:
        self.quiet = quiet
        self.started = time.monotonic()
        self.job_id: str | None = None
        self.remote_cancelled: bool | None = None
        self._live = sys.stderr.isatty() and not quiet
        self._progress: Any = None
        self._task: Any = None
        self._phase = "preparing"
        self._detail = ""
        self._lines = None if self._live or quiet else _Lines(heartbeat, self._status)

    def _status(self) -> str:
        return f"{self._phase} {self._detail}".rstrip()

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
            self._task = self._progress.add_task(self._phase, total=1.0, detail="")
        elif self._lines is not None:
            self._lines.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self._lines is not None:
            self._lines.stop()

    def _show(self, phase: str, fraction: float | None = None, detail: str = "", *, note: bool = False) -> None:
        """Show `phase`; `note` lines (a retry, an estimate) are printed even when the phase is unchanged."""
        if self.quiet:
            return
        changed = phase != self._phase or note
        self._phase, self._detail = phase, detail
        if self._progress is not None:
            if note:
                self._progress.console.print(f"{phase}: {detail}" if detail else phase, style="dim")
            self._progress.update(self._task, description=phase, completed=fraction or 0.0, detail=detail)
            return
        if changed and self._lines is not None:
            self._lines.print(self._status())

    def __call__(self, event: Event) -> None:
        data = event.data
        kind = event.kind
        if event.job_id:
            self.job_id = event.job_id
        if kind == "estimate":
            amount = f"{data.get('amount', 0):.4g} {data.get('currency', '')}".strip()
            self._show("estimate", None, f"{amount}: {data.get('basis')}", note=True)
        elif kind == "waiting":
            self._show("waiting", None, describe_wait(data).removeprefix("waiting "))
        elif kind == "retrying":
            self._show("retrying", None, describe_retry(data).removeprefix("retrying "), note=True)
        elif kind == "journaled":
            self._show("submitting", 0.0, f"journal entry {data.get('entry_id')}")
        elif kind == "attached":
            why = data.get("why")
            self._show("attached", 0.0, f"to job {data.get('job_id') or event.job_id} ({why}): not paying again")
        elif kind == "submitted":
            # Until the provider says otherwise, a new job waits in its queue.
            self._show("queued", 0.0, f"at {event.provider}, job {event.job_id}")
        elif kind == "status":
            state = data.get("state")
            raw = data.get("raw_status")
            if state == "queued":
                self._show("queued", None, f"at {event.provider} ({raw})")
            elif state == "running":
                self._show("running", None, f"at {event.provider} ({raw})")
            else:
                self._show(str(state), None, str(raw or ""))
        elif kind == "progress" and data.get("phase") == "generating":
            eta = data.get("eta")
            detail = f"elapsed {_seconds(data.get('elapsed'))}" + (f", about {_seconds(eta)} left" if eta else "")
            phase = self._phase if self._phase in ("queued", "running") else "running"
            self._show(phase, data.get("fraction"), detail)
        elif kind == "progress" and data.get("phase") == "downloading":
            total = data.get("total")
            got = data.get("bytes", 0)
            detail = f"{got / 1e6:.1f} MB" + (f" of {total / 1e6:.1f} MB" if total else "")
            self._show("downloading", data.get("fraction"), detail)
        elif kind == "stored":
            self._show("stored", 1.0, str(data.get("video_url")))
        elif kind == "cache_hit":
            self._show("cache hit", 1.0, str(data.get("video_url")))
        elif kind == "delivery_failed":
            self._show("delivery failed", None, f"{data.get('error')}; {data.get('resume')}", note=True)
        elif kind == "cancelled":
            self.remote_cancelled = bool(data.get("remote_cancelled"))


def _money(amount: float, currency: str | None) -> str:
    return f"{amount:.2f} {currency}".strip() if currency else f"{amount:.2f}"


def describe_batch(progress: BatchProgress) -> str:
    """One line: "12/50 done, 5 running, 1 downloading, 0 queued at the provider, 3 waiting for a slot, ..."."""
    parts = [
        f"{progress.done}/{progress.total} done",
        f"{progress.running} running",
        f"{progress.delivering} downloading",
        f"{progress.queued} queued at the provider",
        f"{progress.waiting} waiting for a slot",
        f"{progress.failed} failed",
        f"{progress.pending} to go",
    ]
    text = ", ".join(parts)
    if progress.currency or progress.budget is not None:
        text += f"; spent {_money(progress.spent, progress.currency)}"
        if progress.committed > progress.spent + 1e-9:
            text += f" (+{_money(progress.committed - progress.spent, progress.currency)} in flight)"
        if progress.budget is not None:
            text += f" of {_money(progress.budget, progress.currency)} budget"
    unfinished = progress.total - progress.done - progress.failed
    if unfinished:
        text += f"; ETA {_seconds(progress.eta)}" if progress.eta is not None else "; ETA learning"
    return text


class BatchReporter:
    """Shows a running batch: `on_update` takes `BatchProgress`, `on_event` takes `(row id, event)`."""

    def __init__(self, *, quiet: bool = False, heartbeat: float = HEARTBEAT) -> None:
        self.quiet = quiet
        self._live = sys.stderr.isatty() and not quiet
        self._display: Any = None
        self._console: Any = None
        self._last: BatchProgress | None = None
        self._last_line = ""
        self._last_key: tuple[int, ...] | None = None
        self._lines = None if self._live or quiet else _Lines(heartbeat, self._status)

    def _status(self) -> str:
        return describe_batch(self._last) if self._last is not None else "starting"

    def __enter__(self) -> BatchReporter:
        if self._live:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(stderr=True)
            self._display = Live("", console=self._console, transient=True, refresh_per_second=4)
            self._display.start()
        elif self._lines is not None:
            self._lines.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._display is not None:
            self._display.stop()
        if self._lines is not None:
            self._lines.stop()

    def note(self, text: str) -> None:
        """A line that stays (a finished row, a retry's reason, the budget stopping submission)."""
        if self.quiet:
            return
        if self._console is not None:
            self._console.print(text)
        elif self._lines is not None:
            self._lines.print(text)

    def on_update(self, progress: BatchProgress) -> None:
        self._last = progress
        line = describe_batch(progress)
        line_note = progress.note or ""
        if self._display is not None:
            from rich.text import Text

            self._display.update(Text(line + (f"\n{line_note}" if line_note else "")))
            return
        # A line per change of the counts (not of the ETA or spend alone).
        key = (
            progress.done,
            progress.failed,
            progress.running,
            progress.delivering,
            progress.queued,
            progress.waiting,
            progress.pending,
        )
        if key != self._last_key and self._lines is not None:
            self._last_key = key
            self._lines.print(line)

    def on_event(self, row_id: str, event: Event) -> None:
        data = event.data
        if event.kind == "retrying":
            self.note(f"row {row_id}: {describe_retry(data)}")
        elif event.kind == "waiting" and data.get("reason") != "query_rate" and self._lines is not None:
            text = f"row {row_id}: {describe_wait(data)}"
            if text != self._last_line:
                self._last_line = text
                self._lines.print(text)
        elif event.kind == "delivery_failed":
            self.note(f"row {row_id}: delivery failed ({data.get('error')}); {data.get('resume')}")
