"""What the CLI learns about a generation from its events, and the last line it prints.

Whatever stops a generation once the provider may have been paid (Ctrl-C, a signal, the
deadline, a failure after the video was made) the CLI's last line names the job and ends
with the command that collects it: `reelgen jobs resume ID`. `--json` output carries the
same command in a `resume` field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import Cancelled, ProviderFailed, ProviderRefused, ReelgenError, SubmissionUnknown
from ..events import Event

__all__ = ["JobTracker", "resume_command", "tee"]


def resume_command(job_id: str) -> str:
    """The exact command that collects job `job_id`."""
    return f"reelgen jobs resume {job_id}"


def tee(*callbacks: Callable[[Event], Any] | None) -> Callable[[Event], None]:
    """One `on_event` callback calling each of `callbacks` in turn."""
    chosen = [callback for callback in callbacks if callback is not None]

    def each(event: Event) -> None:
        for callback in chosen:
            callback(event)

    return each


class JobTracker:
    """An `on_event` callback remembering the job's ids and how far it got."""

    def __init__(self) -> None:
        #: The journal entry's permanent id (before the provider gave a task id).
        self.entry_id: str | None = None
        #: `provider:task_id`, once the provider accepted the job.
        self.job_id: str | None = None
        #: Whether the provider stopped the job after a cancel (None: no cancel yet).
        self.remote_cancelled: bool | None = None
        self.cache_hit = False
        #: The core's own resume command, from a `delivery_failed` event.
        self.delivery_resume: str | None = None
        #: True when this process joined a job another live process drives (single-flight).
        self.following = False

    def resuming(self, ref: str) -> None:
        """Start from a known job (`reelgen jobs resume ID`): the job id, or the entry id `j-...`."""
        if ":" in ref:
            self.job_id = ref
        else:
            self.entry_id = ref

    def __call__(self, event: Event) -> None:
        data = event.data
        if event.kind == "journaled":
            self.entry_id = str(data.get("entry_id") or event.job_id or "") or self.entry_id
        elif event.kind in ("submitted", "attached"):
            named = str(data.get("job_id") or event.job_id or "")
            if ":" in named:
                self.job_id = named
            elif named:
                self.entry_id = named
            self.following = event.kind == "attached" and data.get("why") == "single-flight"
        elif event.kind == "cache_hit":
            self.cache_hit = True
        elif event.kind == "cancelled":
            self.remote_cancelled = bool(data.get("remote_cancelled"))
        elif event.kind == "delivery_failed" and data.get("resume"):
            self.delivery_resume = str(data["resume"])
        # Events name the job by its entry id (`j-...`) until the provider names the task.
        if event.job_id and event.kind != "cache_hit":
            if ":" in event.job_id:
                self.job_id = self.job_id or event.job_id
            else:
                self.entry_id = self.entry_id or event.job_id

    @property
    def id(self) -> str | None:
        """The best id of the job: the provider's once known, else the journal entry's."""
        return self.job_id or self.entry_id

    @property
    def paid(self) -> bool:
        """True once the provider named a task for this job (it exists and may be billed)."""
        return self.job_id is not None and not self.cache_hit

    def interrupted_note(self, signal_name: str, *, entry_state: str | None = None) -> tuple[str, str | None]:
        """(message, resume command or None) after a signal stopped the generation.

        `entry_state` is the journal's state of the entry now, when the provider had not
        named a task: `submitting` then means the create was never sent.
        """
        job = self.id
        if job is None or self.cache_hit:
            return f"interrupted by {signal_name}: nothing was submitted, nothing is billed", None
        command = resume_command(job)
        if self.job_id is None and entry_state in ("submitting", "failed"):
            return f"interrupted by {signal_name} before the create was sent: nothing is billed", None
        if self.following:
            note = (
                f"interrupted by {signal_name}: job {job} goes on in the process that started it (this request "
                f"pays nothing more); collect it with: {command}"
            )
        elif self.job_id is None:
            note = (
                f"interrupted by {signal_name} while the create was in flight: a task may exist and be billed; "
                f"find and collect it with: {command}"
            )
        elif self.remote_cancelled:
            note = (
                f"interrupted by {signal_name}: the remote job {job} was cancelled and will not be billed; "
                f"check it with: {command}"
            )
        else:
            note = (
                f"interrupted by {signal_name}: the remote job {job} could not be cancelled and may still "
                f"be billed; collect the video with: {command}"
            )
        return note, command

    def failure_resume(self, exc: BaseException) -> str | None:
        """The resume command to end a failure's message with, or None when nothing is billed."""
        if self.cache_hit or isinstance(exc, (ProviderFailed, ProviderRefused)):
            # A cached result costs nothing; a job the provider failed for good has nothing to collect.
            return None
        named = getattr(exc, "job_id", None)
        if named is None and getattr(exc, "task_id", None) and getattr(exc, "provider", None):
            named = f"{exc.provider}:{exc.task_id}"  # type: ignore[attr-defined]
        # After an ambiguous create the entry (j-...) is what to resume; otherwise only a task
        # the provider named can be billed (an entry id alone: the create never went out).
        job = named or (self.id if isinstance(exc, SubmissionUnknown) else self.job_id)
        if job is None:
            return None
        if isinstance(exc, Cancelled):
            return None if exc.remote_cancelled else resume_command(job)
        if isinstance(exc, ReelgenError):
            return self.delivery_resume or resume_command(job)
        return None
