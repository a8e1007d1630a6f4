"""`ProviderContract`: the conformance suite, as a base class a provider's tests inherit.

```python
import pytest
from reelgen_contracts import ProviderContract
from reelgen_preview import PreviewProvider

class TestPreviewContract(ProviderContract):
    @pytest.fixture
    def provider_factory(self):
        return PreviewProvider          # called with the provider's config mapping
```

Supply `provider_factory` (any `(config) -> Provider`, such as the factory the plugin
registers), and optionally `provider_config` and `sandbox` (see `reelgen_contracts.sandbox`).
Every `test_*` below is inherited. Tests that do not apply to the provider's declared
capabilities skip and say why; replacing one needs `@override("why")`, or the class is
refused. `docs/contracts.md` lists every property checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar, cast

import attrs
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import run_state_machine_as_test

import reelgen.errors as reelgen_errors
from reelgen.capabilities import Capabilities
from reelgen.contract import VideoRequest
from reelgen.errors import (
    Cancelled,
    GenerationTimeout,
    ReelgenError,
    StrictWarningError,
    TaskExpired,
    ValidationError,
)
from reelgen.provider import Provider, ProviderJob

from . import strategies as rs
from ._checks import check_error, check_result, check_video, describe, explain_failure, mentions
from ._coherence import capability_problems
from ._conduct import check_job_data, check_poll_schedule
from ._harness import Harness, ProviderBuilder
from ._lifecycle import lifecycle_machine
from ._probes import fingerprint, frames_digest, mutations, option_trials, request_trials, settle, warnable
from ._requests import (
    EDGES,
    cheap_request,
    edge_request,
    extreme_images,
    long_text_requests,
    modest_request,
    reference_image,
    slow_request,
)
from .images import LOCAL_FORMS, ImageForm, ImageServer, encode_image
from .sandbox import FAULT_KINDS, Sandbox

__all__ = ["ProviderContract", "override"]

F = TypeVar("F", bound=Callable[..., Any])

#: Hypothesis examples per test, (default run, --reelgen-thorough).
EXAMPLES: Mapping[str, tuple[int, int]] = {"cheap": (40, 400), "generate": (4, 30), "stateful": (10, 50)}
_OUTBOUND = ("submit", "poll", "cancel")
#: Jobs tried before concluding that none can be caught cancellable (a loaded machine may miss a short queue).
_CANCEL_TRIES = 5


def override(reason: str) -> Callable[[F | None], F]:
    """Mark a subclass's replacement of a standard contract test, saying why.

    ```python
    @override("the sandbox cannot hold a job in the queue")
    def test_cancel_behaves_as_declared(self, contract): ...

    test_options_are_honoured = override("options only change server-side behaviour")(None)
    ```
    Passing None replaces the test with one that skips, giving the reason.
    """
    if not reason or not reason.strip():
        raise ValueError("override() needs a reason: say why the standard test does not apply")

    def mark(func: F | None) -> F:
        if func is None:

            def skipped(self: Any, *args: Any, **kwargs: Any) -> None:
                pytest.skip(f"overridden: {reason}")

            func = skipped  # type: ignore[assignment]
        func.__reelgen_override__ = reason  # type: ignore[union-attr]
        return cast(F, pytest.mark.reelgen_override(reason=reason)(func))

    return mark


def _settings(h: Harness, kind: str) -> settings:
    default, thorough = EXAMPLES[kind]
    phases = list(Phase)
    if not h.thorough and kind != "cheap":
        # Shrinking re-runs generations; in the default run a failure is reported as found.
        phases = [Phase.explicit, Phase.reuse, Phase.generate]
    return settings(
        max_examples=thorough if h.thorough else default,
        deadline=None,
        derandomize=not h.thorough,
        database=settings().database if h.thorough else None,
        phases=phases,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        stateful_step_count=15 if h.thorough else 8,
    )


def _image_forms(h: Harness) -> tuple[ImageForm, ...]:
    forms: tuple[ImageForm, ...] = LOCAL_FORMS
    if h.image_server is not None and "http" in h.caps.image_url_schemes:
        forms += ("http",)
    return forms


class ProviderContract:
    """Inherit this to run the reelgen conformance suite against a provider."""

    #: Seconds one provider call may take before the test fails as hung.
    call_timeout: ClassVar[float] = 120.0
    #: The pipeline's deadline for one generation, in seconds.
    generation_deadline: ClassVar[float] = 120.0
    #: What one drawn request may cost to render: (default run, --reelgen-thorough).
    budgets: ClassVar[tuple[rs.Budget, rs.Budget]] = (
        rs.Budget(max_seconds=2, max_pixels=320 * 240, max_fps=30, max_image_pixels=320 * 320),
        rs.Budget(max_seconds=6, max_pixels=1280 * 720, max_fps=60, max_image_pixels=1024 * 1024),
    )
    #: Options whose effect no result can show (name -> why); merged with the sandbox's.
    invisible_options: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in vars(cls).items():
            replaces = name.startswith("test_") and hasattr(ProviderContract, name)
            if replaces and not getattr(value, "__reelgen_override__", None):
                raise TypeError(
                    f"{cls.__qualname__}.{name} replaces a standard contract test without saying why: "
                    f"decorate it with @reelgen_contracts.override('reason'), or use "
                    f"`{name} = override('reason')(None)` to skip it"
                )

    # -- what a provider author supplies ----------------------------------------------

    @pytest.fixture
    def provider_factory(self) -> ProviderBuilder:
        """Override: return a callable that builds the provider from its config mapping."""
        pytest.fail(
            f"{type(self).__name__} must override the `provider_factory` fixture: return a callable "
            "(config mapping) -> Provider, such as your provider class",
            pytrace=False,
        )

    @pytest.fixture
    def provider_config(self) -> Mapping[str, Any]:
        """Override to configure the provider (merged under the sandbox's configuration)."""
        return {}

    @pytest.fixture
    def sandbox(self) -> Sandbox | Mapping[str, Any] | None:
        """Override to run against a sandbox (an emulator or fake) and offer fault injection."""
        return None

    @pytest.fixture
    def extra_plugins(self) -> list[object]:
        """Override to register reelgen plugins (hook implementations) for the suite's runs."""
        return []

    # -- the suite's own fixture --------------------------------------------------------

    @pytest.fixture
    def contract(
        self,
        request: pytest.FixtureRequest,
        provider_factory: ProviderBuilder,
        provider_config: Mapping[str, Any],
        sandbox: Sandbox | Mapping[str, Any] | None,
        extra_plugins: list[object],
        tmp_path: Path,
    ) -> Iterator[Harness]:
        from reelgen.plugins import get_plugin_manager

        thorough = bool(request.config.getoption("reelgen_thorough", default=False))
        server: ImageServer | None = request.getfixturevalue("reelgen_image_server")
        harness = Harness(
            name="",
            build=provider_factory,
            provider_config=provider_config,
            sandbox=Sandbox.coerce(sandbox),
            workdir=tmp_path,
            allow_billing=bool(request.config.getoption("reelgen_allow_billing", default=False)),
            thorough=thorough,
            call_timeout=self.call_timeout,
            deadline=self.generation_deadline,
            image_server=server,
            budget=self.budgets[1 if thorough else 0],
        )
        harness.name = harness.provider.name
        refusal = harness.billing_refusal()
        if refusal is not None:
            harness.close()
            request.session.shouldstop = refusal  # stop the whole run, not just this test
            pytest.fail(refusal, pytrace=False)
        pm = get_plugin_manager()
        registered = [plugin for plugin in extra_plugins if pm.register(plugin) is not None]
        try:
            with harness.guard:
                yield harness
        finally:
            for plugin in registered:
                pm.unregister(plugin)
            harness.close()

    # == the provider as an object ======================================================

    def test_implements_the_provider_protocol(self, contract: Harness) -> None:
        """The provider has every method and attribute of `reelgen.Provider`, with a usable name."""
        provider = contract.provider.inner
        assert isinstance(provider, Provider), f"{provider!r} does not implement reelgen.Provider"
        assert isinstance(contract.name, str) and contract.name.isidentifier(), (
            f"the provider's name {contract.name!r} must be a Python identifier (it namespaces options and job ids)"
        )
        assert isinstance(contract.caps, Capabilities), "provider.capabilities is not a reelgen.Capabilities"
        job = ProviderJob(provider=contract.name, model=contract.caps.model, task_id="t", submitted_at=0.0)
        delay = provider.poll_delay(job, 0, 0.0)
        assert isinstance(delay, (int, float)) and math.isfinite(delay) and delay >= 0, (
            f"poll_delay(attempt=0) returned {delay!r}: it must be a finite number of seconds >= 0"
        )
        check_poll_schedule(contract)

    def test_construction_is_offline(self, contract: Harness) -> None:
        """Building the provider and validating a request touch no network (factories must be cheap)."""
        assert not contract.construction_connections, (
            f"building {contract.name} opened connections: {contract.construction_connections}"
        )
        with contract.witnessed() as seen:
            contract.provider.validate(cheap_request(contract.caps))
        assert not seen["connections"], f"validate() opened connections: {seen['connections']}"

    def test_capabilities_are_coherent(self, contract: Harness) -> None:
        """The declared capabilities are consistent, so some request is valid and limits mean something."""
        problems = capability_problems(contract.caps)
        assert not problems, f"{contract.name}'s capabilities contradict themselves: " + "; ".join(problems)

    # == validation, before anything is sent ============================================

    def test_valid_requests_are_accepted_offline(self, contract: Harness) -> None:
        """Every request the capabilities allow validates, warns where it must, and sends nothing."""
        h = contract
        strategy = rs.valid_requests(
            h.caps, provider=h.name, budget=rs.Budget(max_image_pixels=640 * 480), other_providers=_others(h)
        )

        @_settings(h, "cheap")
        @given(strategy)
        def check(request: VideoRequest) -> None:
            _accepted_offline(h, request)

        check()
        # Whatever the draw: prompts at the declared limit, or some thousands of characters
        # when none is declared (an undeclared limit must show).
        for request in long_text_requests(h.caps):
            _accepted_offline(h, request)

    def test_invalid_requests_are_refused_before_any_call(self, contract: Harness) -> None:
        """Every invalid request raises `ValidationError` naming its field, before any call or billed job."""
        h = contract

        @_settings(h, "cheap")
        @given(rs.invalid_requests(h.caps, provider=h.name))
        def check(case: rs.InvalidRequest) -> None:
            if case.stage == "construct":
                with pytest.raises(ValidationError) as raised:
                    case.build()
                _assert_field(raised.value, case)
                return
            request = case.build()
            gen = h.generate(request)
            assert isinstance(gen.error, ValidationError), f"{case!r} was not refused with ValidationError: " + (
                describe(gen.error) if gen.error else "it generated a video"
            )
            _assert_field(gen.error, case)
            _assert_nothing_sent(
                h,
                {"calls": gen.calls, "connections": gen.connections, "billed_jobs": gen.billed_jobs},
                f"refusing {case!r}",
            )

        check()

    def test_warnings_become_errors_with_strict(self, contract: Harness) -> None:
        """What the provider cannot honour is a warning, and with `strict=True` an error before any call."""
        h = contract
        makers = warnable(h.caps)
        if not makers:
            pytest.skip(f"{h.name} declares it honours every field exactly: nothing it must warn about")

        forms: tuple[ImageForm, ...] = ("bytes",)

        @_settings(h, "cheap")
        @given(
            rs.valid_requests(h.caps, provider=h.name, budget=h.budget, image_forms=forms, other_providers=_others(h)),
            st.sampled_from(sorted(makers)),
        )
        def check(request: VideoRequest, field: str) -> None:
            import reelgen

            request = attrs.evolve(request, **makers[field](request))
            warnings = reelgen.validate(request, h.provider, config=h.config())
            assert mentions(warnings, field), f"no warning about {field}: {warnings}"
            with pytest.raises(StrictWarningError):
                reelgen.validate(request, h.provider, config=h.config(), strict=True)
            gen = h.generate(request, strict=True)
            assert isinstance(gen.error, StrictWarningError), (
                f"strict generation of a request {h.name} cannot honour ({field}) did not raise "
                f"StrictWarningError: {describe(gen.error) if gen.error else 'it generated a video'}"
            )
            _assert_nothing_sent(
                h,
                {"calls": gen.calls, "connections": gen.connections, "billed_jobs": gen.billed_jobs},
                "a strict refusal",
            )

        check()

    def test_cache_key_is_stable_and_covers_every_field(self, contract: Harness) -> None:
        """The cache key is deterministic, ignores image paths and other providers, and changes with every field."""
        h = contract
        strategy = rs.valid_requests(
            h.caps, provider=h.name, budget=rs.Budget(max_image_pixels=320 * 320), other_providers=_others(h)
        )

        @_settings(h, "cheap")
        @given(strategy)
        def check(request: VideoRequest) -> None:
            import reelgen
            from reelgen.serialization import from_json, to_json

            def key(r: VideoRequest) -> str:
                return reelgen.request_key(r, h.provider, config=h.config())

            first = key(request)
            assert first == key(request) == key(from_json(to_json(request), VideoRequest)), "the key is not stable"
            other = {n: v for n, v in request.options.items() if n != h.name}
            assert key(attrs.evolve(request, options={**request.options, "not_" + h.name: {"x": 1}})) == first, (
                "another provider's options changed the key"
            )
            if isinstance(request.reference_image, bytes):
                from .images import image_as

                as_path = image_as(request.reference_image, "PNG", "path")
                assert key(attrs.evolve(request, reference_image=as_path)) == first, (
                    "the same image as a path and as bytes gave different keys (the key must hash the content)"
                )
            for field, changed in mutations(request, h.name, other).items():
                assert key(changed) != first, f"changing {field} did not change the cache key"

        check()

    # == generation =========================================================================

    def test_generated_results_conform(self, contract: Harness) -> None:
        """Valid requests give stored, decodable videos whose measurements and warnings are honest."""
        h = contract
        strategy = rs.valid_requests(
            h.caps,
            provider=h.name,
            budget=h.budget,
            image_forms=_image_forms(h),
            image_server=h.image_server,
            provider_options=False,
            other_providers=_others(h),
        )

        @_settings(h, "generate")
        @given(strategy)
        def check(request: VideoRequest) -> None:
            check_result(h, h.generate(request))

        check()

    @pytest.mark.parametrize("edge", EDGES)
    def test_edge_requests_generate(self, contract: Harness, edge: str) -> None:
        """Each declared limit (shortest, longest, slowest, fastest, smallest, largest) really works."""
        request = edge_request(contract.caps, edge)
        cost = request.duration * request.fps * request.width * request.height
        if cost > 500 * 1280 * 720 and not contract.thorough:
            pytest.skip(
                f"{edge}: {request.duration:g} s at {request.fps:g} fps, {request.size}: run with "
                "--reelgen-thorough for limits this expensive"
            )
        check_result(contract, contract.generate(request))

    def test_seed_decides_the_video(self, contract: Harness) -> None:
        """Deterministic providers: the same seed gives the same video, another seed another video."""
        h = contract
        if not h.caps.seed:
            pytest.skip(f"{h.name} takes no seed")
        if not h.caps.deterministic:
            pytest.skip(f"{h.name} does not declare deterministic=True (the reported seed is checked elsewhere)")
        extra: dict[str, Any] = {"motion_strength": 1.0} if h.caps.motion_strength else {}
        if h.caps.accepts_reference_image and not h.caps.requires_reference_image:
            extra["reference_image"] = encode_image(160, 120, "PNG", seed=11)
        one = check_result(h, h.generate(cheap_request(h.caps, seed=1, **extra)))
        again = check_result(h, h.generate(cheap_request(h.caps, seed=1, **extra)))
        other = check_result(h, h.generate(cheap_request(h.caps, seed=2, **extra)))
        assert frames_digest(h, one) == frames_digest(h, again), "the same request and seed gave different videos"
        assert frames_digest(h, one) != frames_digest(h, other), (
            "seeds 1 and 2 gave the same video: the seed is ignored (yet reported as used)"
        )
        # No seed asked: the one reported must be the one used, so asking for it gives the video again.
        for image in _seed_images(h):
            fields = {k: v for k, v in extra.items() if k != "reference_image"}
            if image is not None:
                fields["reference_image"] = image
            unseeded = check_result(h, h.generate(cheap_request(h.caps, seed=None, **fields)))
            reported = unseeded.seed
            assert isinstance(reported, int), f"a generation without a seed reported seed {reported!r}, not an int"
            low, high = h.caps.seed_range
            assert low <= reported <= high, (
                f"a generation without a seed reported seed {reported}, outside the declared seed_range "
                f"{h.caps.seed_range}"
            )
            asked = check_result(h, h.generate(cheap_request(h.caps, seed=reported, **fields)))
            assert frames_digest(h, asked) == frames_digest(h, unseeded), (
                f"a generation without a seed reported seed {reported}, but asking for seed {reported} gives another "
                f"video ({'with' if image is not None else 'without'} a reference image): report the seed actually used"
            )

    def test_options_are_honoured(self, contract: Harness) -> None:
        """Each option (and motion strength, negative prompt) shows in what is delivered, or is warned about."""
        h = contract
        invisible = {**self.invisible_options, **(h.sandbox.invisible_options if h.sandbox else {})}
        trials: dict[str, list[tuple[dict[str, Any], str]]] = {
            name: [({"options": {h.name: {**needs, name: value}}}, repr(value)) for value, needs in values]
            for name, values in option_trials(h.caps.options).items()
            if name not in invisible
        }
        for field, changes in request_trials(h.caps).items():
            if field not in invisible:
                trials[field] = [(change, repr(change[field])) for change in changes]
        if not trials:
            pytest.skip(f"{h.name} declares no options (or motion strength, negative prompt) the suite can set")
        base = cheap_request(h.caps, seed=4)
        first, second = h.generate(base), h.generate(base)
        baseline = fingerprint(h, first)
        noisy = {k for k, v in fingerprint(h, second).items() if v != baseline.get(k)}
        # An option may change only when the video arrives (a queue, a slower quality): that shows
        # as a generation clearly longer than both identical ones (a slow machine only makes it lenient).
        pace = max(first.elapsed, second.elapsed)
        slower = 2 * pace + 0.5
        if len(noisy) == len(baseline):
            pytest.skip("identical requests give different results here: options cannot be observed")
        for name, spec in h.caps.options.items():
            # A number whose effect is when the video arrives (a delay, a queue) must be tried at
            # a value this machine's own pace cannot hide: a loaded machine slows the identical
            # generations too, and a 1 s delay then disappears under twice their time.
            if name in trials and trials[name] and spec.type in ("int", "float") and spec.choices is None:
                value: float = 4 * pace + 1
                value = min(value, spec.maximum) if spec.maximum is not None else value
                value = max(value, spec.minimum) if spec.minimum is not None else value
                number: float = math.ceil(value) if spec.type == "int" else round(value, 3)
                template = trials[name][0][0]
                change = {"options": {h.name: {**template["options"][h.name], name: number}}}
                if all(shown != repr(number) for _, shown in trials[name]):
                    trials[name].append((change, repr(number)))
        dropped = []
        for name, values in sorted(trials.items()):
            observed = False
            for change, shown in values:
                gen = h.generate(attrs.evolve(base, **change))
                if isinstance(gen.error, ValidationError):
                    continue  # this value needs something the suite cannot know; try the next
                assert gen.error is None, f"{name}={shown}: " + explain_failure(h, gen)
                seen = fingerprint(h, gen)
                changed = [k for k in baseline if k not in noisy and seen.get(k) != baseline[k]]
                if gen.elapsed > slower:
                    changed.append("timing")
                if changed or mentions(gen.result.warnings if gen.result else [], name):
                    observed = True
                    break
            if not observed:
                dropped.append(f"{name} (tried {[shown for _, shown in values]})")
        assert not dropped, (
            "setting these changed nothing delivered (decoded frames, their motion, size, fps, duration, audio "
            f"track, when it arrived; or what the sandbox received) and no warning mentions them: {dropped}. They "
            "look accepted "
            "and ignored (echoing them in the job record or usage is not an effect); if an option's effect cannot "
            "show in a video, list it in `invisible_options` (or the sandbox's) with the reason."
        )

    def test_cache_serves_the_same_result_without_calls(self, contract: Harness) -> None:
        """A second identical generation comes from the cache: same stored video, no provider call."""
        h = contract
        request = cheap_request(h.caps, seed=6)
        first = check_result(h, h.generate(request, use_cache=True))
        gen = h.generate(request, use_cache=True)
        second = check_result(h, gen)
        assert second.cached, "the second identical generation was not served from the cache"
        assert (second.video_url, second.sha256) == (first.video_url, first.sha256), "the cache served another video"
        assert not [c for c in gen.calls if c in _OUTBOUND], f"a cache hit called the provider: {gen.calls}"

    def test_resources_are_bounded(self, contract: Harness) -> None:
        """Memory and time stay bounded for the thinnest and the widest images accepted (and every generation)."""
        h = contract
        # Every generation's memory and time are checked (the many_frames edge is the long
        # video); here, the images whose aspect ratio a renderer may blow up.
        images = extreme_images(h.caps, max_pixels=h.budget.max_image_pixels or 1024 * 1024)
        if not images:
            pytest.skip(f"{h.name} takes no reference image of an extreme aspect ratio (the bounds hold everywhere)")
        for image in images:
            check_result(h, h.generate(modest_request(h.caps, reference_image=image)))

    # == errors, cancel, deadlines, resume =================================================

    @pytest.mark.parametrize("kind", sorted(FAULT_KINDS))
    def test_errors_keep_the_taxonomy(self, contract: Harness, kind: str) -> None:
        """Injected faults surface as the right error type, with the provider's code and message kept."""
        h = contract
        faults = h.sandbox.faults if h.sandbox else None
        if faults is None:
            pytest.skip("the provider offers no fault injection (Sandbox.faults)")
        if kind not in faults.kinds():
            pytest.skip(f"the sandbox cannot inject {kind!r} faults")
        expected = faults.arm(kind)
        try:
            gen = h.generate(cheap_request(h.caps, seed=8), deadline=min(h.deadline, 60.0))
        finally:
            faults.disarm()
        error_type = FAULT_KINDS[kind]
        if error_type is None:
            check_result(h, gen)  # one job created, one billed in the sandbox, whatever the retries
            return
        error = check_error(h, gen.error, error_type, f"a {kind!r} fault")
        if expected.code is not None:
            assert error.code == expected.code, f"the provider's code {expected.code!r} became {error.code!r}"
        if expected.message is not None:
            assert expected.message in error.provider_message, (
                f"the provider's message {expected.message!r} was lost: {error.provider_message!r}"
            )
        assert not [e for e in gen.events if e.kind == "succeeded"], "a failed generation emitted 'succeeded'"

    def test_unknown_task_is_task_expired(self, contract: Harness) -> None:
        """Resuming a task id the provider never issued fails as `TaskExpired`, not a crash or a hang."""
        import reelgen

        h = contract
        if not h.caps.resume:
            pytest.skip(f"{h.name} declares resume=False")
        job = reelgen.resume(
            f"{h.name}:reelgen-contracts-no-such-task",
            config=h.config(jobs=False),
            provider=h.new_provider(),
            deadline=30.0,
        )
        try:
            h.run(job.wait(), timeout=60.0)
        except TaskExpired:
            return
        except Exception as exc:
            raise AssertionError(f"an unknown task raised {describe(exc)}, expected TaskExpired") from exc
        raise AssertionError("an unknown task id produced a video")

    def test_cancel_behaves_as_declared(self, contract: Harness) -> None:
        """cancel() stops what the capabilities say it can, never claims to stop what it cannot."""
        import reelgen

        h = contract
        mode = h.caps.cancel
        conclusive = 0
        history = ""
        for attempt in range(_CANCEL_TRIES):
            # A new seed each time: a provider may share one task between identical requests.
            request = slow_request(h.caps, seed=50 + attempt) if mode != "none" else cheap_request(h.caps, seed=50)
            job = h.run(reelgen.submit(request, h.provider, config=h.config()))
            stopped = h.run(job.cancel())  # at once: a short queue leaves no time to look first
            assert isinstance(stopped, bool), f"cancel() returned {stopped!r}, not a bool"
            after = settle(h, job)
            history = f"cancel() -> {stopped}; then: {after}"
            if mode == "none":
                assert not stopped, f"cancel='none' is declared, yet cancel() returned True ({history})"
                assert not [c for c in h.provider.methods() if c == "cancel"], "cancel='none', yet provider.cancel ran"
                return
            if stopped:
                assert after[-1] == "cancelled", (
                    f"cancel() returned True, but the job did not end cancelled ({history})"
                )
                with pytest.raises(Cancelled) as raised:
                    h.run(job.wait())
                assert raised.value.remote_cancelled, "Cancelled after a successful cancel says remote_cancelled=False"
                assert raised.value.job_id == job.id
                # Asking again for the same video must start a live job, not hand back the dead one.
                again = h.run(reelgen.submit(request, h.provider, config=h.config()))
                try:
                    result = h.run(again.wait(), timeout=h.deadline + h.call_timeout)
                except ReelgenError as exc:
                    raise AssertionError(
                        f"after cancelling {job.id}, submitting the same request again gave job {again.id}, "
                        f"which failed: {describe(exc)}; a fresh submit must not inherit a cancelled job"
                    ) from exc
                check_video(h, request, result)
                conclusive += 1
            else:
                cancellable = _cancellable(mode)
                # False is honest only if the job had left the cancellable states by then.
                assert after[0] not in cancellable, (
                    f"cancel={mode!r} is declared and the job was still {after[0]}, yet cancel() returned False "
                    f"({history})"
                )
            if conclusive:
                return
        raise AssertionError(
            f"cancel={mode!r} is declared, but in {_CANCEL_TRIES} tries no job was still "
            f"{' or '.join(_cancellable(mode))} when cancel() ran ({history}): a job that can never be caught "
            "cancellable cannot be cancelled. Return "
            "from submit() as soon as the job exists (not when it is done), or declare cancel='none'"
        )

    def test_cancel_from_another_process(self, contract: Harness) -> None:
        """A job resumed by id in a new provider instance can be cancelled there, and stays cancelled everywhere."""
        import reelgen

        h = contract
        mode = h.caps.cancel
        if mode == "none":
            pytest.skip(f"{h.name} declares cancel='none'")
        if not h.caps.resume:
            pytest.skip(f"{h.name} declares resume=False: no other process can name its jobs")
        history = ""
        for attempt in range(_CANCEL_TRIES):
            request = slow_request(h.caps, seed=60 + attempt)
            other = h.new_provider()  # "another process": a new instance, the same job journal
            job = h.run(reelgen.submit(request, h.provider, config=h.config()))
            assert job.id is not None
            resumed = reelgen.resume(job.id, config=h.config(), provider=other)
            stopped = h.run(resumed.cancel())  # at once: a short queue leaves no time to look first
            assert isinstance(stopped, bool), f"cancel() returned {stopped!r}, not a bool"
            there = settle(h, resumed)
            history = f"cancel() from the new instance -> {stopped}; then it saw: {there}"
            if not stopped:
                # False is honest only if the job had left the cancellable states by then.
                assert there[0] not in _cancellable(mode), (
                    f"cancel={mode!r} is declared and the job was still {there[0]} after a new instance's cancel() "
                    f"returned False ({history}): a job must be cancellable from any process that knows its id"
                )
                h.run(job.cancel())  # leave nothing running
                continue
            assert there[-1] == "cancelled", f"cancel() from a new instance returned True, but ({history})"
            here = settle(h, job)
            assert here[-1] == "cancelled", (
                f"cancel() from a new instance returned True, but the instance that submitted the job sees {here} "
                f"({history}): the job went on"
            )
            third = reelgen.resume(job.id, config=h.config(), provider=h.new_provider())
            try:
                result = h.run(third.wait(), timeout=h.deadline + h.call_timeout)
            except Cancelled:
                return
            except ReelgenError as exc:
                raise AssertionError(
                    f"resuming {job.id} after its cancel raised {describe(exc)}, not Cancelled ({history})"
                ) from exc
            raise AssertionError(
                f"cancel() from a new instance returned True, yet resuming {job.id} in a third one delivered "
                f"{result.video_url} ({history}): a cancelled job must stay cancelled"
            )
        # (test_cancel_behaves_as_declared fails a provider whose jobs can never be caught.)
        pytest.skip(
            f"in {_CANCEL_TRIES} tries, every job had left the cancellable states before a new instance could "
            f"cancel it ({history})"
        )

    @pytest.mark.parametrize("image", ["no_image", "image"])
    def test_deadline_then_resume_by_id(self, contract: Harness, image: str) -> None:
        """A deadline raises `GenerationTimeout` with the job id; another process resumes it to the same video."""
        import reelgen

        h = contract
        if image == "image" and (not h.caps.accepts_reference_image or h.caps.requires_reference_image):
            pytest.skip("the provider takes no optional reference image (the other case covers what it takes)")
        extra = {"reference_image": reference_image(h.caps, seed=9)} if image == "image" else {}
        request, error = _timed_out(h, [cheap_request(h.caps, seed=9, **extra), slow_request(h.caps, seed=9, **extra)])
        assert error.job_id is not None and error.job_id.startswith(f"{h.name}:"), (
            f"GenerationTimeout must carry the job id to resume, got {error.job_id!r}"
        )
        if not h.caps.resume:
            pytest.skip(f"{h.name} declares resume=False")
        task_id = error.job_id.split(":", 1)[1]
        other = h.new_provider()  # "another process": a new instance, the same job journal
        job = reelgen.resume(error.job_id, config=h.config(), provider=other)
        try:
            result = h.run(job.wait(), timeout=h.deadline + h.call_timeout)
        except Cancelled:
            # The core cancels a job past its deadline where the provider allows it.
            assert h.caps.cancel != "none", f"{error.job_id} was cancelled, but {h.name} declares cancel='none'"
        else:
            check_video(h, request, result)
            assert result.task_id == task_id, "resume produced a different task's video"
        assert other.count("submit") == 0, "resuming submitted a new job (paying twice)"
        # A job submitted by a process that then exits (`generate --no-wait`) is resumed by id in another.
        # (A slow request: the submitting process must be gone before the job could end.)
        request = slow_request(h.caps, seed=10, **extra)
        submitter = h.new_provider()
        submitted = h.run(reelgen.submit(request, submitter, config=h.config()))
        assert submitted.id is not None
        check_job_data(h, submitter.jobs)
        h.run(submitter.aclose())  # the submitting process is gone: nothing of it in memory
        other = h.new_provider()
        job = reelgen.resume(submitted.id, config=h.config(), provider=other)
        result = h.run(job.wait(), timeout=h.deadline + h.call_timeout)
        check_video(h, request, result)
        assert f"{h.name}:{result.task_id}" == submitted.id, "resume produced a different task's video"
        assert other.count("submit") == 0, "resuming submitted a new job (paying twice)"
        # And once finished, the same id still names the same job and the same video.
        finished = reelgen.resume(submitted.id, config=h.config(), provider=h.new_provider())
        assert finished.id == submitted.id, f"resume({submitted.id!r}) of a finished job has id {finished.id!r}"
        assert h.run(finished.wait()) == result, "resuming a finished job gave another result"
        if h.caps.deterministic and h.caps.seed and request.seed is not None:
            direct = check_result(h, h.generate(request))
            assert frames_digest(h, direct) == frames_digest(h, result), (
                "the job resumed in another process delivered other frames than the same request generated "
                "directly: the job record lacks something the render needs (the reference image?)"
            )

    def test_job_lifecycle_never_reaches_an_impossible_state(self, contract: Harness) -> None:
        """Submit, status, cancel, wait and resume in any order: observations never contradict each other."""
        h = contract
        requests = [cheap_request(h.caps, seed=21), cheap_request(h.caps, seed=22)]
        machine = lifecycle_machine(h, requests)
        run_state_machine_as_test(machine, settings=_settings(h, "stateful"))


# -- helpers ------------------------------------------------------------------------------


def _timed_out(h: Harness, requests: list[VideoRequest]) -> tuple[VideoRequest, GenerationTimeout]:
    """A request and the `GenerationTimeout` of a job it started: tighter deadlines first, then slower requests."""
    history = []
    for request in requests:
        for deadline in (0.02, 0.1, 0.4, 1.5):
            gen = h.generate(request, deadline=deadline)
            if gen.error is None:
                history.append(f"{deadline:g} s: finished in time")
                break  # too fast for a deadline to catch: try a slower request
            # (DeliveryFailed: newer cores say so when the deadline passes after the job finished.)
            delivery_failed = getattr(reelgen_errors, "DeliveryFailed", ())
            if isinstance(gen.error, delivery_failed) and getattr(gen.error, "job_id", None) is not None:
                history.append(f"{deadline:g} s: finished, the deadline passed while delivering")
                break  # the job ran to its end within the deadline: try a slower request
            check_job_data(h, gen.jobs)
            error = check_error(h, gen.error, GenerationTimeout, "a generation past its deadline")
            if error.job_id is not None:
                return request, error
            # Out of time before submitting: then nothing may have been created.
            assert not gen.jobs and not gen.billed_jobs, (
                f"GenerationTimeout without a job id ({describe(error)}), yet submit created "
                f"{[j.task_id for j in gen.jobs] or gen.billed_jobs}: that job is paid for and cannot be resumed"
            )
            history.append(f"{deadline:g} s: timed out before submitting")
    pytest.skip(f"no deadline caught a job between its submit and its end: {history}")


def _others(h: Harness) -> list[str]:
    """Other installed providers (their options ride along in requests, ignored)."""
    from reelgen.plugins import provider_entries

    return sorted(set(provider_entries()) - {h.name})


def _cancellable(mode: str) -> tuple[str, ...]:
    return ("queued",) if mode == "pending" else ("queued", "running")


def _seed_images(h: Harness) -> list[bytes | None]:
    """The reference images to try a seed with: none (where allowed) and one."""
    images: list[bytes | None] = []
    if not h.caps.requires_reference_image:
        images.append(None)
    if h.caps.accepts_reference_image:
        images.append(reference_image(h.caps, seed=12))
    return images


def _accepted_offline(h: Harness, request: VideoRequest) -> None:
    import reelgen
    from reelgen.serialization import from_json, to_json

    assert from_json(to_json(request), VideoRequest) == request, "the request does not survive JSON"
    with h.witnessed() as seen:
        try:
            warnings = reelgen.validate(request, h.provider, config=h.config())
        except ValidationError as exc:
            raise AssertionError(
                f"{h.name} refused a request its capabilities allow: {describe(exc)}. Declare the limit "
                "in Capabilities (so the core refuses it up front), or fix validate()."
            ) from exc
    assert isinstance(warnings, list) and all(isinstance(w, str) for w in warnings)
    for field in rs.expected_warnings(request, h.caps):
        assert mentions(warnings, field), f"no warning about {field}, which {h.name} cannot honour: {warnings}"
    _assert_nothing_sent(h, seen, "validating a request")


def _assert_field(error: ValidationError, case: rs.InvalidRequest) -> None:
    assert error.field in (case.field, None), (
        f"{case!r} was refused, but the error blames {error.field!r} instead of {case.field!r}: {error}"
    )


def _assert_nothing_sent(h: Harness, seen: Mapping[str, Any], what: str) -> None:
    outbound = [c for c in seen["calls"] if c in _OUTBOUND]
    assert not outbound, f"{what} called the provider's {outbound} (nothing may be sent before validation passes)"
    assert not seen["connections"], f"{what} opened network connections: {seen['connections']}"
    assert not seen["billed_jobs"], f"{what} created {seen['billed_jobs']} job(s) in the sandbox"
