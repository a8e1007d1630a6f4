"""Providers with one defect each, for proving that the contract suite catches it.

Every class changes one thing about `FakeRemoteProvider` (which passes the whole suite);
those of `broken_preview.py` change one thing about the preview provider.
`BROKEN` records, for each, the suite tests that must fail and a pattern their failure
report must contain, so the self-test proves each is caught *for its defect*.
"""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from reelgen import JobStatus, ProviderFailed, ProviderJob, ProviderOutput, TaskExpired, ValidationError, VideoRequest
from reelgen.errors import ProviderError
from reelgen.hookspecs import hookimpl
from tests.contracts.broken_preview import DEFECTS as PREVIEW_DEFECTS
from tests.contracts.fakeremote import CAPABILITIES, FakeRemoteProvider


class MisreportsFps(FakeRemoteProvider):
    """Renders at a fixed 24 fps, while its capabilities (no native_fps) promise the fps asked for."""

    def wire_params(self, request: VideoRequest, seed: int) -> dict[str, Any]:
        return {**super().wire_params(request, seed), "fps": 24.0}


class MisreportsDuration(FakeRemoteProvider):
    """Renders 80% of the duration asked for, without a word."""

    def wire_params(self, request: VideoRequest, seed: int) -> dict[str, Any]:
        return {**super().wire_params(request, seed), "duration": request.duration * 0.8}


class IgnoresSeed(FakeRemoteProvider):
    """Always renders with seed 0, but reports the seed it was given."""

    def wire_params(self, request: VideoRequest, seed: int) -> dict[str, Any]:
        return {**super().wire_params(request, seed), "seed": 0}

    def output(self, job: ProviderJob, view: Mapping[str, Any]) -> ProviderOutput:
        return attrs.evolve(super().output(job, view), seed=job.seed)


class ReportsWrongSeed(FakeRemoteProvider):
    """Reports a seed other than the one it used."""

    def output(self, job: ProviderJob, view: Mapping[str, Any]) -> ProviderOutput:
        return attrs.evolve(super().output(job, view), seed=view["seed"] + 1)


class AcceptsInvalidSize(FakeRemoteProvider):
    """Declares any side from 15 px, but the service only renders even sides: odd sizes fail after submit."""

    capabilities = attrs.evolve(CAPABILITIES, side_range=(15, 640), size_multiple_of=1)


class HidesUrlExpiry(FakeRemoteProvider):
    """Presents its expiring download URL as if it never expired (no expires_at)."""

    def output(self, job: ProviderJob, view: Mapping[str, Any]) -> ProviderOutput:
        return attrs.evolve(super().output(job, view), expires_at=None)


class StoresSourceUrl(FakeRemoteProvider):
    """Comes with a storage plugin that hands back the provider's expiring URL as the durable one."""


class SourceUrlStorage:
    """The plugin `StoresSourceUrl` ships: stores nothing, answers with the source URL (lightly disguised)."""

    @hookimpl(tryfirst=True)
    def reelgen_store_video(self, request: Any, result: Any, source: Any) -> Any:
        return attrs.evolve(result, video_url=result.video_url + "#durable", sha256=source.sha256, bytes=source.bytes)


class SwallowsErrors(FakeRemoteProvider):
    """Turns every failed job into a bare "failed", dropping the provider's code, message and kind."""

    def failure(self, job: ProviderJob, view: Mapping[str, Any]) -> ProviderError:
        return ProviderFailed("the job failed", provider=self.name)


class NetworkBeforeValidation(FakeRemoteProvider):
    """Asks the service whether it is up while validating, before anything is known to be valid."""

    def validate(self, request: VideoRequest) -> list[str]:
        with urllib.request.urlopen(f"{self.base_url}/health", timeout=5):
            pass
        return []


class PhonesHomeOnInit(FakeRemoteProvider):
    """Contacts its service when it is built (factories must be cheap and offline)."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        with urllib.request.urlopen(f"{self.base_url}/health", timeout=5):
            pass


class DropsOption(FakeRemoteProvider):
    """Declares the `audio` option but never sends it."""

    def wire_params(self, request: VideoRequest, seed: int) -> dict[str, Any]:
        return {**super().wire_params(request, seed), "audio": False}


class CannotCancel(FakeRemoteProvider):
    """Declares cancel='any' and says it cancelled, but never tells the service."""

    async def cancel(self, job: ProviderJob) -> bool:
        return True


class ForgetsJobs(FakeRemoteProvider):
    """Hands out its own task ids and keeps the mapping in memory: no other process can resume them."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._ids: dict[str, str] = {}

    async def submit(self, request: VideoRequest) -> ProviderJob:
        job = await super().submit(request)
        local = uuid.uuid4().hex
        self._ids[local] = job.task_id
        return attrs.evolve(job, task_id=local)

    def _real(self, job: ProviderJob) -> ProviderJob:
        if job.task_id not in self._ids:
            raise TaskExpired("unknown task", provider=self.name, task_id=job.task_id)
        return attrs.evolve(job, task_id=self._ids[job.task_id])

    async def poll(self, job: ProviderJob) -> JobStatus:
        return await super().poll(self._real(job))

    async def cancel(self, job: ProviderJob) -> bool:
        return await super().cancel(self._real(job))


class RefusesUnicode(FakeRemoteProvider):
    """Refuses prompts that are not ASCII, though nothing in its capabilities says so."""

    def validate(self, request: VideoRequest) -> list[str]:
        if not request.prompt.isascii():
            raise ValidationError("prompt must be ASCII", field="prompt")
        return []


class FlipFlops(FakeRemoteProvider):
    """Reports a finished job as running again on every other poll."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(config)
        self._polls: dict[str, int] = {}

    async def poll(self, job: ProviderJob) -> JobStatus:
        status = await super().poll(job)
        if status.state == "succeeded":
            count = self._polls[job.task_id] = self._polls.get(job.task_id, 0) + 1
            if count % 2 == 0:
                return JobStatus(state="running", raw_status="running")
        return status


@attrs.frozen
class Defect:
    provider: type[Any]
    #: `-k` expression selecting the suite tests that must fail.
    tests: str
    #: A pattern the failure report must contain (it fails *for this defect*).
    because: str
    plugins: tuple[object, ...] = ()
    #: What the provider runs against: "fakeremote" (`FakeService`) or "preview" (its work folder and ledger).
    sandbox: str = "fakeremote"


BROKEN: dict[str, Defect] = {
    "misreports_fps": Defect(MisreportsFps, "test_generated_results_conform", r"asked for [\d.]+ fps and got 24"),
    "misreports_duration": Defect(MisreportsDuration, "test_generated_results_conform", r"more than one frame off"),
    "ignores_seed": Defect(IgnoresSeed, "test_seed_decides_the_video", r"the seed is ignored"),
    "reports_wrong_seed": Defect(ReportsWrongSeed, "test_generated_results_conform", r"asked for seed \d+ but"),
    "accepts_invalid_size": Defect(
        AcceptsInvalidSize, "test_edge_requests_generate and smallest_size", r"sides must be even"
    ),
    "hides_url_expiry": Defect(HidesUrlExpiry, "test_generated_results_conform", r"has no expires_at"),
    "stores_source_url": Defect(
        StoresSourceUrl,
        "test_generated_results_conform",
        r"not under the configured storage",
        plugins=(SourceUrlStorage(),),
    ),
    "swallows_errors": Defect(
        SwallowsErrors, "test_errors_keep_the_taxonomy and (failed or content)", r"code 'RenderCrashed' became None"
    ),
    "network_before_validation": Defect(
        NetworkBeforeValidation, "test_valid_requests_are_accepted_offline", r"opened network connections"
    ),
    "phones_home_on_init": Defect(PhonesHomeOnInit, "test_construction_is_offline", r"opened connections"),
    "drops_option": Defect(DropsOption, "test_options_are_honoured", r"audio \(tried"),
    "cannot_cancel": Defect(CannotCancel, "test_cancel_behaves_as_declared", r"did not end cancelled"),
    "forgets_jobs": Defect(ForgetsJobs, "test_deadline_then_resume_by_id", r"TaskExpired"),
    "refuses_unicode": Defect(
        RefusesUnicode, "test_valid_requests_are_accepted_offline", r"refused a request its capabilities allow"
    ),
    "flip_flops": Defect(
        FlipFlops, "test_job_lifecycle_never_reaches_an_impossible_state", r"terminal states are final"
    ),
}

# The defects built on the preview provider (one or more per class of issue 11), run against
# the preview "service" of broken_preview.py.
BROKEN.update({name: Defect(d.provider, d.tests, d.because, sandbox="preview") for name, d in PREVIEW_DEFECTS.items()})
