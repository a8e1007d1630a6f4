"""A scriptable in-test provider: real MP4s over real HTTP, with every failure mode on demand."""

from __future__ import annotations

import time
from typing import Any

import attrs

from reelgen import Capabilities, JobStatus, ProviderJob, ProviderOutput, VideoRequest
from reelgen.errors import ProviderError, TransientError


@attrs.define
class Script:
    """What the fake does. Lists are consumed call by call."""

    #: States returned by successive polls (the last one repeats).
    states: list[str] = attrs.Factory(lambda: ["queued", "running", "succeeded"])
    #: Exceptions raised by successive submits before one succeeds.
    submit_errors: list[Exception] = attrs.Factory(list)
    #: Exceptions raised by successive polls (None = answer normally).
    poll_errors: list[Exception | None] = attrs.Factory(list)
    #: A terminal error raised once the states run out at "failed".
    failure: ProviderError | None = None
    cancel_result: bool = True
    poll_delay: float = 0.0
    seed: int | None = 7
    url: str = ""


class FakeProvider:
    name = "fake"

    def __init__(self, script: Script, capabilities: Capabilities | None = None) -> None:
        self.script = script
        self.capabilities = capabilities or Capabilities(
            model="fake-1", duration_range=(0.5, 30), fps_range=(1, 60), size_multiple_of=2, cancel="any"
        )
        self.calls: list[str] = []
        self.validated: list[VideoRequest] = []
        self._polls = 0
        self.cancelled = False

    def validate(self, request: VideoRequest) -> list[str]:
        self.validated.append(request)
        return []

    async def submit(self, request: VideoRequest) -> ProviderJob:
        self.calls.append("submit")
        if self.script.submit_errors:
            raise self.script.submit_errors.pop(0)
        return ProviderJob(
            provider=self.name,
            model=self.capabilities.model,
            task_id=f"task-{len(self.calls)}",
            submitted_at=time.time(),
            seed=self.script.seed if request.seed is None else request.seed,
        )

    async def poll(self, job: ProviderJob) -> JobStatus:
        self.calls.append("poll")
        if self.script.poll_errors:
            error = self.script.poll_errors.pop(0)
            if error is not None:
                raise error
        if self.cancelled:
            return JobStatus(state="cancelled", raw_status="CANCELED")
        states = self.script.states
        state: Any = states[min(self._polls, len(states) - 1)]
        self._polls += 1
        if state == "failed" and self.script.failure is not None:
            raise self.script.failure
        if state == "succeeded":
            output = ProviderOutput(
                source_url=self.script.url, usage={"seconds": 1}, seed=job.seed, expires_at="2030-01-01T00:00:00Z"
            )
            return JobStatus(state="succeeded", raw_status="SUCCEEDED", output=output)
        return JobStatus(state=state, raw_status=state.upper())

    async def cancel(self, job: ProviderJob) -> bool:
        self.calls.append("cancel")
        self.cancelled = self.script.cancel_result
        return self.script.cancel_result

    def poll_delay(self, job: ProviderJob, attempt: int, elapsed: float) -> float:
        return self.script.poll_delay

    async def aclose(self) -> None:
        pass


def transient(message: str = "flaky") -> TransientError:
    return TransientError(message, provider="fake")
