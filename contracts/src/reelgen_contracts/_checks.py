"""What a result (or an error) must be, written once and used by every test that gets one.

Each check raises `AssertionError` with a message that says what the provider did wrong
and where to look, because the person reading it is a provider author, not us.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from reelgen.contract import VideoRequest, VideoResult, parse_size
from reelgen.errors import ProviderError, ReelgenError, ValidationError

from ._conduct import check_conduct, check_job_data
from .strategies import expected_warnings

if TYPE_CHECKING:
    from reelgen.capabilities import Capabilities
    from reelgen.probe import VideoProbe

    from ._harness import Generation, Harness

__all__ = ["check_error", "check_result", "check_video", "fps_close", "mentions", "stored_path"]

#: Events that speak of a job that exists, so cannot come before 'submitted' (others, such as
#: the journal entry, waiting for a slot, a price estimate or a warning, may).
_AFTER_SUBMIT = frozenset({"status", "progress", "downloaded", "stored", "succeeded", "failed", "cancelled"})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SIZE = re.compile(r"^[0-9]+\*[0-9]+$")


def mentions(warnings: list[str], field: str) -> bool:
    """True if some warning names `field` (warnings start with, or contain, the field name)."""
    return any(field in warning for warning in warnings)


def fps_close(a: float, b: float) -> bool:
    return abs(a - b) <= max(0.01, 0.001 * max(a, b))


def stored_path(url: str) -> Path | None:
    """The local file behind a stored video's URL (file:// or a plain path), if it is local."""
    if url.startswith("file://"):
        return Path(unquote(urlparse(url).path))
    if "://" not in url:
        return Path(url)
    return None


def describe(error: BaseException) -> str:
    parts = [f"{type(error).__name__}: {error}"]
    cause = error.__cause__ or error.__context__
    if cause is not None:
        parts.append(f"(caused by {type(cause).__name__}: {cause})")
    return " ".join(parts)


def explain_failure(h: Harness, gen: Generation) -> str:
    """Why a request valid per the capabilities did not produce a video, for the assertion message."""
    error = gen.error
    assert error is not None
    what = describe(error)
    if isinstance(error, ValidationError):
        return (
            f"{h.name} refused a request its capabilities accept: {what}. Either the capabilities promise "
            "more than the provider takes (declare the limit in Capabilities, so the core refuses it with a "
            "clear message), or validate() is wrong."
        )
    if isinstance(error, ProviderError):
        return (
            f"{h.name} accepted the request locally, sent it, and then failed it: {what}. A request the "
            "capabilities allow must generate; what the service would reject must be refused before any "
            "network call (in Capabilities or validate())."
        )
    if not isinstance(error, ReelgenError):
        return f"{h.name} raised {what}, which is outside reelgen's error taxonomy (see reelgen.errors)."
    return f"the generation failed: {what}"


def _parse_time(text: str) -> datetime:
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    return datetime.fromisoformat(value)


def check_schema(h: Harness, result: VideoResult) -> None:
    """The result's fields have the types and shapes the JSON Schema promises."""
    problems = []
    if not isinstance(result.video_url, str) or not result.video_url:
        problems.append(f"video_url {result.video_url!r} is not a non-empty string")
    for name in ("duration", "fps"):
        value = getattr(result, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            problems.append(f"{name} {value!r} is not a finite number > 0")
    if result.seed is not None and (isinstance(result.seed, bool) or not isinstance(result.seed, int)):
        problems.append(f"seed {result.seed!r} is not an int")
    if not isinstance(result.size, str) or not _SIZE.match(result.size):
        problems.append(f"size {result.size!r} is not 'W*H'")
    if result.provider != h.name:
        problems.append(f"provider is {result.provider!r}, expected {h.name!r}")
    if result.model != h.caps.model:
        problems.append(f"model is {result.model!r}, but the capabilities declare {h.caps.model!r}")
    if not isinstance(result.sha256, str) or not _SHA256.match(result.sha256):
        problems.append(f"sha256 {result.sha256!r} is not 64 lowercase hex digits")
    if isinstance(result.bytes, bool) or not isinstance(result.bytes, int) or result.bytes < 1:
        problems.append(f"bytes {result.bytes!r} is not a positive int")
    if result.task_id is not None and (not isinstance(result.task_id, str) or not result.task_id):
        problems.append(f"task_id {result.task_id!r} is not a non-empty string")
    for name in ("source_url", "expires_at"):
        value = getattr(result, name)
        if value is not None and not isinstance(value, str):
            problems.append(f"{name} {value!r} is not a string or None")
    if result.expires_at is not None:
        try:
            _parse_time(result.expires_at)
        except ValueError:
            problems.append(f"expires_at {result.expires_at!r} is not an ISO 8601 time")
    if not isinstance(result.cached, bool):
        problems.append(f"cached {result.cached!r} is not a bool")
    if not all(isinstance(w, str) for w in result.warnings):
        problems.append(f"warnings {result.warnings!r} are not all strings")
    try:
        json.dumps(result.usage, allow_nan=False)
    except (TypeError, ValueError) as exc:
        problems.append(f"usage {result.usage!r} is not JSON ({exc})")
    assert not problems, f"{h.name}: the result does not match the contract's schema: " + "; ".join(problems)
    check_json_schema(result)


def check_json_schema(result: VideoResult) -> None:
    """The result's JSON validates against `reelgen schema` (when jsonschema is installed)."""
    try:
        import jsonschema  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # optional: the checks above cover the same ground field by field
        return
    import reelgen
    from reelgen.serialization import unstructure

    schema = reelgen.json_schema()
    definition = {**schema["$defs"]["VideoResult"], "$defs": schema["$defs"]}
    errors = sorted(jsonschema.Draft202012Validator(definition).iter_errors(unstructure(result)), key=str)
    assert not errors, "the result's JSON does not validate against `reelgen schema`: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path)) or '(result)'}: {e.message}" for e in errors
    )


def check_round_trip(result: VideoResult) -> None:
    from reelgen.serialization import from_json, to_json

    again = from_json(to_json(result), type(result))
    assert again == result, f"the result does not survive a JSON round trip: {result!r} became {again!r}"


def check_stored(h: Harness, result: VideoResult) -> VideoProbe:
    """The video is stored durably where the configuration says, intact, and measured honestly."""
    from reelgen.probe import probe_video

    assert result.video_url != result.source_url, (
        f"video_url is the provider's own URL ({result.video_url}): results must point at the durably "
        "stored copy, never at a URL that expires"
    )
    path = stored_path(result.video_url)
    assert path is not None, (
        f"video_url {result.video_url!r} is not under the configured storage ({h.storage_dir}): the video was "
        "not stored durably"
    )
    root = h.storage_dir.resolve()
    resolved = path.resolve()
    assert resolved.is_relative_to(root), (
        f"video_url {result.video_url!r} is not under the configured storage ({root}): the video was not "
        "stored durably (is it the provider's expiring URL in disguise?)"
    )
    assert resolved.is_file(), f"video_url {result.video_url!r} names no file"
    import hashlib

    content = resolved.read_bytes()
    assert len(content) == result.bytes, f"the stored file is {len(content)} bytes; the result says {result.bytes}"
    digest = hashlib.sha256(content).hexdigest()
    assert digest == result.sha256, f"the stored file's sha256 is {digest}; the result says {result.sha256}"
    probe = probe_video(resolved, decode=True)
    assert abs(probe.duration - result.duration) <= 1e-3, (
        f"the stored video lasts {probe.duration} s but the result reports {result.duration} s"
    )
    assert fps_close(probe.fps, result.fps), (
        f"the stored video runs at {probe.fps} fps; the result reports {result.fps}"
    )
    assert probe.size == result.size, f"the stored video is {probe.size}; the result reports {result.size}"
    assert probe.frames >= 1, "the stored video has no frames"
    return probe


def check_honest(h: Harness, request: VideoRequest, result: VideoResult, probe: VideoProbe) -> None:
    """What the capabilities promise about the output is what came out."""
    caps = h.caps
    frame = 1.0 / probe.fps
    assert abs(probe.duration - request.duration) <= frame + 2e-3, (
        f"asked for {request.duration:g} s and got {probe.duration:g} s (more than one frame off): "
        f"the capabilities accept this duration, so {h.name} must produce it (or declare what it can do)"
    )
    if caps.native_fps is not None:
        assert any(fps_close(probe.fps, native) for native in caps.native_fps), (
            f"the video runs at {probe.fps:g} fps, but the capabilities declare native_fps={caps.native_fps}"
        )
    else:
        assert fps_close(probe.fps, request.fps), (
            f"asked for {request.fps:g} fps and got {probe.fps:g}: the capabilities declare no native_fps, which "
            f"promises the requested rate; declare native_fps if {h.name} outputs a fixed rate"
        )
    check_size(caps, request, probe)
    if caps.seed:
        assert isinstance(result.seed, int) and not isinstance(result.seed, bool), (
            f"{h.name} takes a seed, so the result must report the seed used (an int), got {result.seed!r}"
        )
        if request.seed is not None:
            assert result.seed == request.seed, (
                f"asked for seed {request.seed} but the result reports seed {result.seed}"
            )
    if caps.result_url_ttl is not None and result.source_url is not None and not result.cached:
        assert result.expires_at is not None, (
            f"the capabilities say {h.name}'s URLs expire after {caps.result_url_ttl:g} s, but the result has no "
            "expires_at: report when the provider's URL expires"
        )
        expires = _parse_time(result.expires_at)
        if expires.tzinfo is not None:
            assert expires > datetime.now(timezone.utc), f"expires_at {result.expires_at} is already past"


def check_size(caps: Capabilities, request: VideoRequest, probe: VideoProbe) -> None:
    width, height = probe.width, probe.height
    if caps.resolution_tiers:
        near = [
            tier
            for tier in caps.resolution_tiers
            if abs(width * height - tier.pixels)
            <= max(tier.multiple_of, 1) * (width + height + max(tier.multiple_of, 1)) + 0.02 * tier.pixels
        ]
        assert near, (
            f"the video is {probe.size} ({width * height} pixels), near none of the declared resolution tiers "
            f"{[(t.name, t.pixels) for t in caps.resolution_tiers]}"
        )
        assert any(width % max(t.multiple_of, 1) == 0 and height % max(t.multiple_of, 1) == 0 for t in near), (
            f"the video is {probe.size}, whose sides are not multiples of its tier's multiple_of"
        )
    elif not caps.aspect_follows_image:
        assert (width, height) == parse_size(request.size), (
            f"asked for {request.size} and got {probe.size}: the capabilities accept this size, so it must be "
            "produced exactly (or declare sizes / resolution_tiers / aspect_follows_image)"
        )


def check_warnings(h: Harness, request: VideoRequest, result: VideoResult, probe: VideoProbe) -> None:
    """Every difference between what was asked and what was made is in `warnings`."""
    for field in expected_warnings(request, h.caps):
        assert mentions(result.warnings, field), (
            f"{h.name} cannot honour {field} as asked (per its capabilities), but no warning says so: {result.warnings}"
        )
    frame = 1.0 / probe.fps
    differences = {
        "duration": abs(probe.duration - request.duration) > frame + 1e-6,
        "fps": not fps_close(probe.fps, request.fps),
        "size": (probe.width, probe.height) != parse_size(request.size),
        "seed": request.seed is not None and result.seed is not None and result.seed != request.seed,
    }
    for field, differs in differences.items():
        if differs:
            assert mentions(result.warnings, field), (
                f"the video's {field} differs from the request, and no warning says so: {result.warnings}"
            )


def check_events(h: Harness, gen: Generation, result: VideoResult) -> None:
    kinds = [event.kind for event in gen.events]
    assert kinds, "no lifecycle events were emitted"
    assert all(event.provider == h.name for event in gen.events), "an event names another provider"
    if result.cached:
        job_events = [kind for kind in kinds if kind in _AFTER_SUBMIT or kind == "submitted"]
        assert "cache_hit" in kinds and not job_events, f"a cached result should come with cache_hit alone: {kinds}"
        return
    assert "submitted" in kinds, f"no 'submitted' event: {kinds}"
    first = kinds.index("submitted")
    early = [kind for kind in kinds[:first] if kind in _AFTER_SUBMIT]
    assert not early, f"events {early} came before 'submitted': {kinds}"
    assert kinds.count("submitted") == 1, f"one generation reported {kinds.count('submitted')} submissions: {kinds}"
    assert "succeeded" in kinds and "failed" not in kinds, f"a successful generation's events: {kinds}"
    assert "stored" in kinds and kinds.index("stored") < kinds.index("succeeded"), (
        f"no 'stored' event before 'succeeded': {kinds}"
    )
    # (Before the create, the journal's entry has an id of its own: no task id yet.)
    job_ids = {event.job_id for event in gen.events[first:]}
    assert job_ids == {f"{h.name}:{result.task_id}"}, f"events name job ids {job_ids}, not {h.name}:{result.task_id}"


def check_calls(h: Harness, gen: Generation) -> None:
    calls = gen.calls
    if gen.result is not None and gen.result.cached:
        assert not [c for c in calls if c in ("submit", "poll", "cancel")], f"a cache hit called the provider: {calls}"
        return
    assert len(gen.jobs) == 1, f"one generation created {len(gen.jobs)} jobs: {calls}"
    assert gen.billed_jobs in (None, 1), f"one generation made {gen.billed_jobs} jobs in the sandbox"
    assert "validate" in calls and calls.index("validate") < calls.index("submit"), (
        f"the provider was not asked to validate before submitting: {calls}"
    )
    assert "cancel" not in calls, f"a plain generation called cancel: {calls}"


def check_video(h: Harness, request: VideoRequest, result: VideoResult) -> VideoProbe:
    """Everything a result must satisfy, however it was obtained (generated, cached, resumed)."""
    check_schema(h, result)
    check_round_trip(result)
    probe = check_stored(h, result)
    if not result.cached:
        check_honest(h, request, result, probe)
        check_warnings(h, request, result, probe)
    return probe


def check_result(h: Harness, gen: Generation) -> VideoResult:
    """Everything a successful generation must satisfy, calls and events included. Returns the result."""
    check_job_data(h, gen.jobs)  # first: unsafe job data may be why the generation failed
    assert gen.error is None, explain_failure(h, gen)
    result = gen.result
    assert result is not None
    check_video(h, gen.request, result)
    check_calls(h, gen)
    check_events(h, gen, result)
    check_conduct(h, gen)
    return result


def check_error(h: Harness, error: BaseException | None, expected: type[BaseException], what: str) -> Any:
    """`error` is an `expected` from reelgen's taxonomy; return it."""
    assert error is not None, f"{what}: expected {expected.__name__}, but it succeeded"
    assert isinstance(error, expected), f"{what}: expected {expected.__name__}, got {describe(error)}"
    if isinstance(error, ProviderError):
        assert error.provider in (None, h.name), f"{what}: the error names provider {error.provider!r}"
    return error
