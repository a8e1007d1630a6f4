"""Probes the suite uses to look at a provider from the outside.

How to ask for what a provider must warn about, how to change each request field, what
to try for each option, and what of a generation can be observed and compared.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from reelgen.capabilities import Capabilities, OptionSpec
from reelgen.contract import VideoRequest, parse_size
from reelgen.errors import ReelgenError

from ._checks import explain_failure, stored_path
from ._harness import Generation, Harness
from .images import encode_image

__all__ = ["fingerprint", "frames_digest", "mutations", "option_trials", "request_trials", "settle", "warnable"]


def _asking(**fields: Any) -> Callable[[VideoRequest], dict[str, Any]]:
    return lambda request: dict(fields)


def warnable(caps: Capabilities) -> dict[str, Callable[[VideoRequest], dict[str, Any]]]:
    """For each field the provider cannot honour exactly: how to make a request ask for it."""
    makers: dict[str, Callable[[VideoRequest], dict[str, Any]]] = {}
    if caps.native_fps is not None:
        low, high = caps.fps_range or (1.0, 240.0)
        candidates = (24.0, 25.0, 30.0, 60.0, low, high)
        other = next((f for f in candidates if f not in caps.native_fps and low <= f <= high), None)
        if other is not None:
            makers["fps"] = _asking(fps=other)
    if caps.prompt_max_chars is not None and caps.prompt_overflow == "truncate":
        makers["prompt"] = _asking(prompt="p" * (caps.prompt_max_chars + 5))
    if not caps.negative_prompt:
        makers["negative_prompt"] = _asking(negative_prompt="blurry, low quality")
    elif caps.negative_prompt_max_chars is not None and caps.prompt_overflow == "truncate":
        makers["negative_prompt"] = _asking(negative_prompt="n" * (caps.negative_prompt_max_chars + 5))
    if not caps.seed:
        makers["seed"] = _asking(seed=7)
    if not caps.motion_strength:
        makers["motion_strength"] = _asking(motion_strength=0.5)
    return makers


def mutations(request: VideoRequest, provider: str, other_options: Mapping[str, Any]) -> dict[str, VideoRequest]:
    """For each request field, the request with only that field changed (still a valid contract request)."""
    width, height = parse_size(request.size)
    changes: dict[str, Any] = {
        "prompt": {"prompt": request.prompt + " (again)"},
        "negative_prompt": {"negative_prompt": None if request.negative_prompt else "blurry"},
        "duration": {"duration": request.duration + 1},
        "fps": {"fps": request.fps + 1},
        "size": {"size": f"{width + 2}*{height}"},
        "seed": {"seed": 0 if request.seed is None else (request.seed + 1) % (2**63)},
        "motion_strength": {"motion_strength": 0.25 if request.motion_strength is None else None},
        "reference_image": {
            "reference_image": None if request.reference_image is not None else encode_image(32, 32, "PNG", seed=99)
        },
        "options": {"options": {**other_options, provider: {**request.options_for(provider), "zz_changed": 1}}},
    }
    mutated = {field: attrs.evolve(request, **change) for field, change in changes.items()}
    if request.reference_image is not None:
        mutated["reference_image content"] = attrs.evolve(request, reference_image=encode_image(33, 31, "PNG", seed=98))
    return mutated


def frames_digest(h: Harness, result: Any) -> str:
    """A digest of the decoded frames (encoders may differ in container bytes for the same frames)."""
    import hashlib

    import av

    path = stored_path(result.video_url)
    assert path is not None
    digest = hashlib.sha256()
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            digest.update(frame.to_ndarray(format="rgb24").tobytes())
    return digest.hexdigest()


def option_trials(specs: Mapping[str, OptionSpec]) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """Values to try for each option (other than its default), with what each needs."""
    from ._invalid import _requirements

    trials: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for name, spec in specs.items():
        needs = _requirements(specs, spec)
        if spec.choices is not None:
            values = [c for c in spec.choices if c != spec.default]
        elif spec.type == "bool":
            values = [not spec.default] if spec.default is not None else [True, False]
        elif spec.type in ("int", "float"):
            values = _near(spec)
        else:
            continue  # free text: the suite cannot know a valid value
        trials[name] = [(value, needs) for value in values]
    return trials


def _near(spec: OptionSpec) -> list[Any]:
    """A value next to the default, inside the bounds: a small change, cheap to run."""
    default = spec.default if spec.default is not None else (spec.minimum if spec.minimum is not None else 0)
    low = spec.minimum if spec.minimum is not None else -math.inf
    high = spec.maximum if spec.maximum is not None else math.inf
    values = []
    for candidate in (default + 1, default - 1, (default + high) / 2 if math.isfinite(high) else None):
        if candidate is not None and low <= candidate <= high and candidate != default:
            values.append(int(candidate) if spec.type == "int" else float(candidate))
    return values[:1]


def fingerprint(h: Harness, gen: Generation) -> dict[str, str]:
    """What was delivered, each part comparable on its own (and what the sandbox received).

    Only what a user gets counts: the decoded frames, how much they move, the measured
    size, fps and duration, the audio track. Not the job record, the usage or the file's
    bytes, which a provider can change by echoing an option it otherwise ignores. A
    sandbox standing for a remote service adds what it received: that is what the
    service acts on.
    """
    assert gen.error is None, explain_failure(h, gen)
    result = gen.result
    assert result is not None
    path = stored_path(result.video_url)
    assert path is not None
    job = gen.jobs[-1] if gen.jobs else None
    received = h.sandbox.received if h.sandbox else None
    frames, motion = _frames(path)
    return {
        "sent": json.dumps(received(job.task_id) if received and job else None, sort_keys=True, default=str),
        "frames": frames,
        "motion": motion,
        "measurements": f"{result.size} {result.fps} {result.duration}",
        "audio": _audio(path),
    }


def _frames(path: Path) -> tuple[str, str]:
    """A digest of the decoded frames, and how much they move (mean change between frames, coarse)."""
    import hashlib

    import av
    import numpy as np

    digest = hashlib.sha256()
    previous: Any = None
    change = 0.0
    count = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            digest.update(rgb.tobytes())
            gray = rgb.astype(np.int16).sum(axis=2)
            if previous is not None and previous.shape == gray.shape:
                change += float(np.abs(gray - previous).mean()) / 3
                count += 1
            previous = gray
    return digest.hexdigest(), f"{change / max(1, count):.1f}"


def _audio(path: Path) -> str:
    """The audio tracks: none, or their decoded samples' digest."""
    import hashlib

    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return "no audio"
        digest = hashlib.sha256()
        for frame in container.decode(audio=0):
            digest.update(bytes(frame.planes[0]))
        return f"audio {digest.hexdigest()}"


def request_trials(caps: Capabilities) -> dict[str, list[dict[str, Any]]]:
    """Request fields that must show in the video when set (the provider declares it honours them)."""
    trials: dict[str, list[dict[str, Any]]] = {}
    if caps.motion_strength:
        trials["motion_strength"] = [{"motion_strength": 0.0}, {"motion_strength": 1.0}]
    if caps.negative_prompt:
        trials["negative_prompt"] = [{"negative_prompt": "blurry, low quality, watermark, text"}]
    return trials


def settle(h: Harness, job: Any, *, polls: int = 40) -> list[str]:
    """Poll a job until it is terminal (or `polls` run out); return the states seen."""
    import time

    states = []
    for attempt in range(polls):
        try:
            status = h.run(job.status())
        except ReelgenError as exc:
            states.append(type(exc).__name__)
            break
        states.append(status.state)
        if status.terminal:
            break
        time.sleep(min(0.5, 0.02 * 2**attempt))
    return states
