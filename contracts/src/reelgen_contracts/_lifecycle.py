"""A stateful test of the job lifecycle: submit, status, cancel, wait and resume in any order.

The model keeps what has been *observed* about each remote task (by job id, since two
handles, or two identical submissions, may share one) and each handle. Whatever order
Hypothesis picks, no observation may contradict an earlier one:

- a task's terminal state is final (succeeded, failed and cancelled never change, however
  often it is looked at);
- a task whose cancel returned True never succeeds;
- cancel never claims to stop a task already seen finished;
- a fresh submit never hands back a task that is already cancelled or failed;
- `wait()` after a cancel that returned True raises `Cancelled`; otherwise it returns a
  conforming result (also after a cancel that returned False),
  the same one every time for the same handle;
- job ids are `provider:task_id`, and every error is one of reelgen's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, precondition, rule

from reelgen.errors import Cancelled, ReelgenError, TransientError
from reelgen.provider import TERMINAL_STATES

from ._checks import check_honest, check_schema, check_stored, describe

if TYPE_CHECKING:
    from reelgen.contract import VideoRequest, VideoResult
    from reelgen.jobs import Job

    from ._harness import Harness

__all__ = ["lifecycle_machine"]

_STATES = frozenset({"queued", "running", "succeeded", "failed", "cancelled"})


@attrs.define
class _Task:
    terminal: str | None = None
    remote_cancelled: bool = False
    history: list[str] = attrs.Factory(list)


@attrs.define
class _Handle:
    job: Job
    request: VideoRequest | None
    cancel_requested: bool = False
    result: VideoResult | None = None


class _Request:
    """A request with a short name, so failure reports stay readable."""

    def __init__(self, name: str, request: VideoRequest) -> None:
        self.name = name
        self.request = request

    def __repr__(self) -> str:
        return self.name


def lifecycle_machine(h: Harness, requests: list[VideoRequest]) -> type[RuleBasedStateMachine]:
    import reelgen

    named = [_Request(f"request_{i}", r) for i, r in enumerate(requests)]

    class JobLifecycle(RuleBasedStateMachine):
        handles = Bundle("handles")

        def __init__(self) -> None:
            super().__init__()
            self.tasks: dict[str, _Task] = {}
            self.live: list[_Handle] = []

        def _task(self, handle: _Handle) -> _Task:
            assert handle.job.id is not None
            return self.tasks.setdefault(handle.job.id, _Task())

        def _story(self, handle: _Handle) -> str:
            task = self._task(handle)
            return f"job {handle.job.id}: observed {task.history}"

        @initialize(target=handles, named=st.sampled_from(named))
        def first_submit(self, named: _Request) -> _Handle:
            return self._submit(named)

        @rule(target=handles, named=st.sampled_from(named))
        def submit(self, named: _Request) -> _Handle:
            return self._submit(named)

        def _submit(self, named: _Request) -> _Handle:
            request = named.request
            job = h.run(reelgen.submit(request, h.provider, config=h.config()))
            assert job.id == f"{h.name}:{job.task_id}", f"job id {job.id!r} is not '{h.name}:<task_id>'"
            known = self.tasks.get(job.id)
            if known is not None:
                assert not known.remote_cancelled and known.terminal not in ("cancelled", "failed"), (
                    f"a new submit returned {job.id}, a task already {known.terminal or 'cancelled'}: a fresh "
                    f"job must not start out dead ({self._story(_Handle(job, request))})"
                )
            handle = _Handle(job, request)
            self._task(handle).history.append("submit")
            self.live.append(handle)
            return handle

        def _look(self, handle: _Handle) -> str | None:
            """Poll once and check the observation against everything seen so far."""
            task = self._task(handle)
            try:
                status = h.run(handle.job.status())
            except TransientError as exc:
                task.history.append(f"status raised {type(exc).__name__}")
                return "transient"  # a failed look (throttled, 5xx) says nothing about the job
            except ReelgenError as exc:
                task.history.append(f"status raised {type(exc).__name__}")
                assert task.terminal is None or task.terminal == "failed", (
                    f"status raised {describe(exc)} for a task seen {task.terminal}"
                )
                return None
            assert status.state in _STATES, f"unknown state {status.state!r}"
            assert status.progress is None or 0.0 <= status.progress <= 1.0, f"progress {status.progress} not in [0, 1]"
            task.history.append(status.state)
            if status.state == "succeeded" and not handle.job.done:
                # (A job already holding its result answers for itself, without the provider's output.)
                assert status.output is not None and status.output.source_url, "succeeded without an output URL"
            if task.terminal is not None:
                assert status.state == task.terminal, (
                    f"{handle.job.id} was {task.terminal} and is now {status.state}: terminal states are final "
                    f"({self._story(handle)})"
                )
            if task.remote_cancelled:
                assert status.state != "succeeded", (
                    f"cancel() returned True, yet {handle.job.id} succeeded ({self._story(handle)})"
                )
            if status.state in TERMINAL_STATES and handle.result is None:
                task.terminal = status.state
            return status.state

        @rule(handle=handles)
        def status(self, handle: _Handle) -> None:
            self._look(handle)

        @rule(handle=handles)
        def watch(self, handle: _Handle) -> None:
            """Poll until the job ends (without downloading it), then look twice more."""
            for attempt in range(60):
                state = self._look(handle)
                if state is None or state in TERMINAL_STATES:
                    break
                time.sleep(min(0.25, 0.05 * 2**attempt))
            self._look(handle)
            self._look(handle)

        @rule(handle=handles)
        def cancel(self, handle: _Handle) -> None:
            task = self._task(handle)
            stopped = h.run(handle.job.cancel())
            assert isinstance(stopped, bool), f"cancel() returned {stopped!r}, not a bool"
            task.history.append(f"cancel->{stopped}")
            if handle.result is not None or task.terminal in ("succeeded", "failed"):
                assert not stopped, (
                    f"cancel() returned True for {handle.job.id}, already {task.terminal or 'done'}: it cannot "
                    f"have been stopped ({self._story(handle)})"
                )
            if h.caps.cancel == "none":
                assert not stopped, "cancel() returned True, but the capabilities declare cancel='none'"
            if handle.result is None:
                handle.cancel_requested = True
            if stopped:
                task.remote_cancelled = True

        @rule(handle=handles)
        def wait(self, handle: _Handle) -> None:
            task = self._task(handle)
            earlier = handle.result
            try:
                result = h.run(handle.job.wait())
            except Cancelled:
                task.history.append("wait->Cancelled")
                assert handle.cancel_requested or task.remote_cancelled or task.terminal == "cancelled", (
                    f"wait() raised Cancelled for {handle.job.id}, which nobody cancelled ({self._story(handle)})"
                )
                if task.remote_cancelled:
                    task.terminal = "cancelled"
                return
            except ReelgenError as exc:
                task.history.append(f"wait->{type(exc).__name__}")
                raise AssertionError(
                    f"wait() on a valid request raised {describe(exc)} ({self._story(handle)})"
                ) from exc
            task.history.append("wait->result")
            if earlier is not None:
                assert result == earlier, "wait() returned a different result the second time"
                return
            assert not task.remote_cancelled, (
                f"cancel() returned True, yet wait() produced a video ({self._story(handle)})"
            )
            # (After a cancel() that returned False the job may have finished: its video is paid for, and
            # delivering it is right. After a True, the assertion above holds.)
            check_schema(h, result)
            probe = check_stored(h, result)
            if handle.request is not None:
                check_honest(h, handle.request, result, probe)
            handle.result = result
            task.terminal = "succeeded"

        @precondition(lambda self: h.caps.resume)
        @rule(target=handles, handle=handles)
        def resume(self, handle: _Handle) -> Any:
            assert handle.job.id is not None
            job = reelgen.resume(handle.job.id, config=h.config(), provider=h.provider)
            assert job.id == handle.job.id, f"resume({handle.job.id!r}) gave a job with id {job.id!r}"
            self._task(handle).history.append("resume")
            fresh = _Handle(job, handle.request)
            self.live.append(fresh)
            return fresh

        def teardown(self) -> None:
            # Leave nothing running for the next example: stop what can be stopped.
            for handle in self.live:
                if handle.result is None and not handle.cancel_requested:
                    try:
                        h.run(handle.job.cancel())
                    except Exception:  # noqa: BLE001 - best effort cleanup
                        pass

    return JobLifecycle
