"""Hypothesis strategies for the `video.generate` contract, derived from declared capabilities.

```python
from hypothesis import given
from reelgen_contracts import strategies as rs

@given(rs.valid_requests(CAPABILITIES, provider="preview"))
def test_accepts(request): ...
```

- `valid_requests(caps, provider=)`: requests the provider must accept. Every field, edge
  values at the declared limits, unicode prompts, every accepted form of `size` and
  `reference_image`, provider options that satisfy their specs, and settings the provider
  cannot honour exactly (those must come back as warnings: see `expected_warnings`).
- `invalid_requests(caps, provider=)`: `InvalidRequest` cases that each break exactly one
  field, either so the contract itself refuses it (`stage="construct"`) or so only this
  provider's capabilities do (`stage="capabilities"`).
- `capabilities()`: arbitrary, self-consistent `Capabilities`, to test code (this kit
  included) that must work for any provider.
- `video_requests()`, `video_results()`: the contract types on their own; registered with
  Hypothesis (entry point `hypothesis`), so `st.from_type(VideoRequest)` works.

A `Budget` bounds what one request costs to render, for end-to-end tests: durations,
sizes and frame rates are drawn inside it where the capabilities allow, and at the
cheapest valid value where they do not.
"""

from __future__ import annotations

import math
import string
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .images import IMAGE_FORMS, LOCAL_FORMS, WRITABLE_FORMATS, ImageForm, encode_image, image_as

if TYPE_CHECKING:
    from reelgen.capabilities import Capabilities, OptionSpec
    from reelgen.contract import VideoRequest, VideoResult

    from .images import ImageServer


def _hypothesis_setup_hook() -> None:
    """Registered as Hypothesis' `hypothesis` entry point: called when Hypothesis is imported.

    Registers the contract types so `st.from_type(VideoRequest)` works. It is defined
    before this module imports Hypothesis: importing this module first imports Hypothesis,
    which runs this hook on a half-imported module. Strategies are built on first draw.
    """
    try:
        from reelgen.capabilities import Capabilities
        from reelgen.contract import VideoRequest, VideoResult
    except Exception:  # noqa: BLE001 - a broken reelgen must not break every Hypothesis user
        import warnings

        warnings.warn("reelgen-contracts: reelgen could not be imported; strategies not registered", stacklevel=2)
        return
    from hypothesis import strategies as st

    def ours(name: str) -> Any:
        import reelgen_contracts.strategies as module

        return getattr(module, name)()

    try:  # Hypothesis prints every attrs field, even repr=False ones: keep image bytes short.
        from hypothesis.vendor.pretty import for_type_by_name

        for_type_by_name("reelgen.contract", "VideoRequest", _pretty_request)
    except Exception:  # noqa: BLE001 - a nicety; the vendored printer is not public API
        pass
    st.register_type_strategy(VideoRequest, st.deferred(lambda: ours("video_requests")))
    st.register_type_strategy(VideoResult, st.deferred(lambda: ours("video_results")))
    st.register_type_strategy(Capabilities, st.deferred(lambda: ours("capabilities")))


def _pretty_request(request: Any, printer: Any, cycle: bool) -> None:
    printer.text(describe_request(request))


def describe_request(request: Any) -> str:
    """A `VideoRequest` in one line, image bytes abbreviated (for test reports)."""
    import hashlib

    image = request.reference_image
    if isinstance(image, bytes):
        shown = f"<{len(image)} bytes sha256:{hashlib.sha256(image).hexdigest()[:12]}>"
    elif isinstance(image, str) and len(image) > 80:
        shown = repr(image[:60] + f"...({len(image)} chars)")
    else:
        shown = repr(image)
    fields = ", ".join(
        f"{name}={getattr(request, name)!r}"
        for name in ("prompt", "negative_prompt", "duration", "fps", "size", "seed", "motion_strength", "options")
    )
    return f"VideoRequest({fields}, reference_image={shown})"


# After the hook on purpose (see its docstring).
from hypothesis import strategies as st  # noqa: E402

__all__ = [
    "UNLIMITED",
    "Budget",
    "InvalidRequest",
    "capabilities",
    "expected_warnings",
    "invalid_requests",
    "option_values",
    "reference_images",
    "valid_requests",
    "video_requests",
    "video_results",
]

from ._values import MAX_SEED, MAX_SIDE, InvalidRequest  # noqa: E402 - re-exported; after the hook too
from ._values import requirement_value as _typed  # noqa: E402

#: Prompts a person would write, in several scripts, with punctuation JSON has to escape.
SAMPLE_PROMPTS = (
    "a cat surfing a wave at sunset, cinematic",
    "一只猫在海浪上冲浪，电影感",
    "🐱🏄 golden hour, slow dolly in",
    "שקיעה מעל הים, camera drifts left",
    'Ünïcödé café — «quotes», "double", \\back\\slash, {braces} and a\nnewline',
    "x",
)
#: Printable text in any script, plus newline and tab: what a person can type.
_PROMPT_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), include_characters="\n\t")
#: Frame rates people ask for.
_COMMON_FPS = (8.0, 12.0, 15.0, 23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 60.0)
_SIZE_FORMS = ("{w}*{h}", "{w}x{h}", "{w}X{h}", "{w}×{h}", " {w} * {h} ")


@attrs.frozen(kw_only=True)
class Budget:
    """What one drawn request may cost to render. `None` means no limit."""

    #: Longest duration, in seconds.
    max_seconds: float | None = None
    #: Largest output size, in pixels (width times height).
    max_pixels: int | None = None
    #: Highest frame rate.
    max_fps: float | None = None
    #: Largest reference image, in pixels.
    max_image_pixels: int | None = 4_000_000


UNLIMITED = Budget()


# -- scalar fields ---------------------------------------------------------------------


def _durations(caps: Capabilities, budget: Budget) -> st.SearchStrategy[float]:
    limit = budget.max_seconds if budget.max_seconds is not None else math.inf
    if caps.durations is not None:
        affordable = sorted(d for d in caps.durations if d <= limit) or [min(caps.durations)]
        return st.sampled_from(affordable)
    if caps.duration_range is not None:
        low, high = caps.duration_range
        top = max(low, min(high, limit))
        if caps.integer_duration:
            first, last = math.ceil(low), math.floor(top)
            last = max(first, last)
            return st.one_of(st.sampled_from(sorted({first, last})), st.integers(first, last)).map(float)
        return st.one_of(
            st.sampled_from(sorted({low, top})),
            st.floats(low, top, allow_nan=False, allow_infinity=False),
            st.integers(math.ceil(low), max(math.ceil(low), math.floor(top)))
            .map(float)
            .filter(lambda d: low <= d <= top),
        )
    top = max(0.5, min(10.0, limit))
    return st.one_of(st.sampled_from(sorted({min(1.0, top), top})), st.floats(0.5, top))


def _fps_values(caps: Capabilities, budget: Budget, *, honoured_only: bool = False) -> st.SearchStrategy[float]:
    limit = budget.max_fps if budget.max_fps is not None else math.inf
    if caps.fps_range is not None:
        low, high = caps.fps_range
        top = max(low, min(high, limit))
        common = [f for f in _COMMON_FPS if low <= f <= top]
        inside = st.floats(low, top, allow_nan=False, allow_infinity=False)
        if caps.native_fps is not None:
            native = [f for f in caps.native_fps if low <= f <= high]
            if honoured_only:
                return st.sampled_from(native or [low])
            return st.one_of(st.sampled_from(native or [low]), inside)
        return st.one_of(st.sampled_from(sorted({low, top, *common})), inside)
    if caps.native_fps is not None:
        if honoured_only:
            return st.sampled_from(caps.native_fps)
        others = [f for f in _COMMON_FPS if f <= limit] or [min(_COMMON_FPS)]
        # Any other rate is valid too: the provider cannot honour it, so it must warn.
        return st.one_of(st.sampled_from(caps.native_fps), st.sampled_from(others))
    top = max(1.0, min(60.0, limit))
    return st.one_of(st.sampled_from([f for f in _COMMON_FPS if f <= top] or [top]), st.floats(1.0, top))


def _tier_sizes(caps: Capabilities) -> list[tuple[int, int]]:
    """Typical sizes for each resolution tier: landscape, portrait, square, 4:3."""
    sizes = []
    for tier in caps.resolution_tiers:
        for aspect in (16 / 9, 9 / 16, 1.0, 4 / 3):
            multiple = max(tier.multiple_of, caps.size_multiple_of, 1)
            width = max(multiple, round(math.sqrt(tier.pixels * aspect) / multiple) * multiple)
            height = max(multiple, round(tier.pixels / width / multiple) * multiple)
            sizes.append((width, height))
    return sizes


def _in_side_range(caps: Capabilities, width: int, height: int) -> bool:
    if caps.side_range is None:
        return True
    low, high = caps.side_range
    return low <= width <= high and low <= height <= high


def _size_pairs(caps: Capabilities, budget: Budget) -> st.SearchStrategy[tuple[int, int]]:
    frame_cap = caps.max_frame_pixels if caps.max_frame_pixels is not None else math.inf
    limit = min(budget.max_pixels if budget.max_pixels is not None else math.inf, frame_cap)
    listed: list[tuple[int, int]] = []
    if caps.sizes is not None:
        for size in caps.sizes:
            w, _, h = size.partition("*")
            if w.isdigit() and h.isdigit():
                listed.append((int(w), int(h)))
    if caps.resolution_tiers:
        affordable_tiers = [t for t in caps.resolution_tiers if t.pixels <= limit] or [
            min(caps.resolution_tiers, key=lambda t: t.pixels)
        ]
        names = {t.name for t in affordable_tiers}
        tier_caps = attrs.evolve(caps, resolution_tiers=tuple(t for t in caps.resolution_tiers if t.name in names))
        listed += _tier_sizes(tier_caps)
    if listed:
        fitting = [s for s in listed if _in_side_range(caps, *s) and s[0] * s[1] <= frame_cap] or listed
        affordable = [s for s in fitting if s[0] * s[1] <= limit] or [min(fitting, key=lambda s: s[0] * s[1])]
        return st.sampled_from(sorted(set(affordable)))
    # Free size: any sides in range that are multiples of size_multiple_of.
    multiple = max(1, caps.size_multiple_of)
    low, high = caps.side_range or (1, MAX_SIDE)
    first = math.ceil(low / multiple)
    last = high // multiple

    def sides(max_side: float) -> st.SearchStrategy[int]:
        top = max(first, min(last, int(max_side // multiple)))
        return st.one_of(st.sampled_from(sorted({first, top})), st.integers(first, top)).map(lambda k: k * multiple)

    @st.composite
    def pair(draw: st.DrawFn) -> tuple[int, int]:
        width = draw(sides(min(limit / (first * multiple), MAX_SIDE)))
        height = draw(sides(min(limit / width, MAX_SIDE)))
        return width, height

    return pair()


def _size_text(pair: st.SearchStrategy[tuple[int, int]]) -> st.SearchStrategy[str]:
    """Every spelling of a size the contract accepts ("W*H", "WxH", "W×H", spaces)."""
    return st.tuples(pair, st.sampled_from(_SIZE_FORMS)).map(lambda t: t[1].format(w=t[0][0], h=t[0][1]))


def _text(max_chars: int | None, *, cap: int = 200) -> st.SearchStrategy[str]:
    """Non-blank unicode text up to `max_chars`, including text exactly `max_chars` long."""
    limit = min(max_chars, cap) if max_chars is not None else cap
    free = st.text(_PROMPT_CHARS, min_size=1, max_size=limit).filter(lambda s: bool(s.strip()))
    samples = [p for p in SAMPLE_PROMPTS if max_chars is None or len(p) <= max_chars]
    choices = [free, st.sampled_from(samples)] if samples else [free]
    if max_chars is not None:
        choices.append(_text_of_length(max_chars))
    return st.one_of(*choices)


def _text_of_length(length: int) -> st.SearchStrategy[str]:
    seed = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Z")), min_size=1, max_size=8)
    return seed.map(lambda s: (s * (length // len(s) + 1))[:length])


#: Prompt lengths tried when a provider declares no limit: an undeclared one must show.
LONG_PROMPTS = (1000, 2500, 5000)


def _prompts(caps: Capabilities) -> st.SearchStrategy[str]:
    base = _text(caps.prompt_max_chars)
    if caps.prompt_max_chars is None:
        # No declared limit promises any length: try some thousands of characters.
        return st.one_of(base, st.sampled_from(LONG_PROMPTS).flatmap(_text_of_length))
    if caps.prompt_overflow == "truncate":
        # Longer than the limit is valid: the provider cuts it, and must say so.
        longer = st.integers(1, 50).flatmap(lambda extra: _text_of_length(caps.prompt_max_chars + extra))  # type: ignore[operator]
        return st.one_of(base, longer)
    return base


def _negative_prompts(caps: Capabilities) -> st.SearchStrategy[str | None]:
    if not caps.negative_prompt:
        return st.one_of(st.none(), _text(None, cap=40))  # unsupported: must warn
    limit = caps.negative_prompt_max_chars
    choices: list[st.SearchStrategy[str | None]] = [st.none(), _text(limit, cap=100)]
    if limit is not None and caps.prompt_overflow == "truncate":
        choices.append(st.integers(1, 20).map(lambda extra: "n" * (limit + extra)))
    return st.one_of(*choices)


def _seeds(caps: Capabilities) -> st.SearchStrategy[int | None]:
    if not caps.seed:
        return st.one_of(st.none(), st.integers(0, 2**31 - 1))  # unsupported: must warn
    low, high = caps.seed_range
    return st.one_of(st.none(), st.sampled_from(sorted({low, high})), st.integers(low, high))


def _motion(caps: Capabilities) -> st.SearchStrategy[float | None]:
    return st.one_of(st.none(), st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0))


# -- reference images ------------------------------------------------------------------


def _accepted_forms(caps: Capabilities, forms: Collection[ImageForm] | None) -> list[ImageForm]:
    wanted = list(forms) if forms is not None else list(IMAGE_FORMS)
    return [f for f in wanted if f in LOCAL_FORMS or f in caps.image_url_schemes]


def _image_formats(caps: Capabilities) -> list[str]:
    declared = caps.image_formats or tuple(WRITABLE_FORMATS)
    return [f for f in declared if f in WRITABLE_FORMATS and f != "TIFF"] or ["PNG"]


@st.composite
def _image_content(draw: st.DrawFn, caps: Capabilities, budget: Budget) -> tuple[bytes, str]:
    fmt = draw(st.sampled_from(_image_formats(caps)))
    low, high = caps.image_side_range or (16, 4096)
    low = max(low, 1)
    if fmt == "WEBP":
        high = max(low, min(high, 16383))  # the most WebP can encode
    max_pixels = min(budget.max_image_pixels or high * high, caps.image_max_pixels or high * high)
    wide = max(low, min(high, max_pixels // low))
    comfortable = min(wide, low + 320)  # never so wide that the shortest height is over the area
    width = draw(st.one_of(st.sampled_from(sorted({low, wide})), st.integers(low, max(low, comfortable))))
    tall = max(low, min(high, max_pixels // width))
    height = draw(st.one_of(st.sampled_from(sorted({low, tall})), st.integers(low, max(low, min(comfortable, tall)))))
    alpha = caps.image_alpha and fmt in ("PNG", "WEBP") and draw(st.booleans())
    content = encode_image(width, height, fmt, seed=draw(st.integers(0, 2**32 - 1)), alpha=alpha)
    if caps.image_max_bytes is not None and len(content) > caps.image_max_bytes:
        content = encode_image(low, low, fmt, seed=1)
    return content, fmt


def reference_images(
    caps: Capabilities,
    *,
    forms: Collection[ImageForm] | None = None,
    budget: Budget = UNLIMITED,
    directory: Path | None = None,
    server: ImageServer | None = None,
) -> st.SearchStrategy[Any]:
    """Reference images the provider accepts, in each accepted form (`images.IMAGE_FORMS`).

    Remote forms appear only for schemes in `caps.image_url_schemes`; `http` URLs point at
    `server` when given (fetchable), else nowhere (fine for validation, not for generating).
    """
    accepted = _accepted_forms(caps, forms)
    if not accepted:
        raise ValueError("no accepted reference image form among those asked for")
    return st.tuples(_image_content(caps, budget), st.sampled_from(accepted)).map(
        lambda t: image_as(t[0][0], t[0][1], t[1], directory=directory, server=server)
    )


# -- provider options ------------------------------------------------------------------


def option_values(spec: OptionSpec) -> st.SearchStrategy[Any]:
    """Values `spec` accepts (its choices, or its type within its bounds)."""
    if spec.choices is not None:
        return st.sampled_from(spec.choices)
    if spec.type == "str" and spec.default is not None:
        return st.just(spec.default)
    if spec.type == "bool":
        return st.booleans()
    if spec.type == "int":
        low = math.ceil(spec.minimum) if spec.minimum is not None else -(2**31)
        high = math.floor(spec.maximum) if spec.maximum is not None else 2**31 - 1
        return st.one_of(st.sampled_from(sorted({low, high})), st.integers(low, high))
    if spec.type == "float":
        low_f = spec.minimum if spec.minimum is not None else -1e9
        high_f = spec.maximum if spec.maximum is not None else 1e9
        return st.one_of(st.sampled_from(sorted({low_f, high_f})), st.floats(low_f, high_f))
    return st.text(string.ascii_letters + string.digits + "-_ ", min_size=1, max_size=30)


@st.composite
def _provider_options(draw: st.DrawFn, specs: Mapping[str, OptionSpec]) -> dict[str, Any]:
    # Free text without a default: the suite cannot know a valid value (a URL? a name?).
    settable = sorted(n for n, s in specs.items() if s.choices is not None or s.type != "str" or s.default is not None)
    names = draw(st.lists(st.sampled_from(settable), unique=True, max_size=len(settable))) if settable else []
    chosen = {name: draw(option_values(specs[name])) for name in names}
    # Satisfy `requires` ("other=value", or bare "other": set): set what each chosen option needs...
    for name in list(chosen):
        for requirement in specs[name].requires:
            other, _, wanted = requirement.partition("=")
            value = _typed(specs[other], wanted) if other in specs else None
            if value is not None:
                chosen[other] = value
    # ...and drop an option whose needs conflict with another's, until none do.
    while unmet := [name for name in chosen if not _requirements_met(name, chosen, specs)]:
        del chosen[unmet[0]]
    return chosen


def _requirements_met(name: str, chosen: Mapping[str, Any], specs: Mapping[str, OptionSpec]) -> bool:
    for requirement in specs[name].requires:
        other, _, wanted = requirement.partition("=")
        actual = chosen.get(other, specs[other].default if other in specs else None)
        if (wanted and str(actual).lower() != wanted.lower()) or (not wanted and not actual):
            return False
    return True


# -- whole requests --------------------------------------------------------------------


@st.composite
def _valid_fields(
    draw: st.DrawFn,
    caps: Capabilities,
    provider: str,
    budget: Budget,
    image_forms: Collection[ImageForm] | None,
    directory: Path | None,
    server: ImageServer | None,
    provider_options: bool,
    honoured_only: bool,
    other_providers: Collection[str],
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "prompt": draw(_text(caps.prompt_max_chars) if honoured_only else _prompts(caps)),
        "duration": draw(_durations(caps, budget)),
        "fps": draw(_fps_values(caps, budget, honoured_only=honoured_only)),
        "size": draw(_size_text(_size_pairs(caps, budget))),
    }
    if honoured_only:
        if caps.negative_prompt:
            fields["negative_prompt"] = draw(st.one_of(st.none(), _text(caps.negative_prompt_max_chars, cap=60)))
        if caps.seed:
            fields["seed"] = draw(_seeds(caps))
        if caps.motion_strength:
            fields["motion_strength"] = draw(_motion(caps))
    else:
        fields["negative_prompt"] = draw(_negative_prompts(caps))
        fields["seed"] = draw(_seeds(caps))
        fields["motion_strength"] = draw(_motion(caps))
    if caps.accepts_reference_image:
        image = reference_images(caps, forms=image_forms, budget=budget, directory=directory, server=server)
        fields["reference_image"] = draw(image if caps.requires_reference_image else st.one_of(st.none(), image))
    options: dict[str, dict[str, Any]] = {}
    if provider_options and caps.options:
        mine = draw(_provider_options(caps.options))
        if mine:
            options[provider] = mine
    others = sorted(set(other_providers) - {provider})
    if others and draw(st.integers(0, 4)) == 0:
        # Another installed provider's options are ignored, never an error and never forwarded.
        options[draw(st.sampled_from(others))] = {"anything": 1}
    fields["options"] = options
    return fields


def valid_requests(
    caps: Capabilities,
    *,
    provider: str,
    budget: Budget = UNLIMITED,
    image_forms: Collection[ImageForm] | None = None,
    image_dir: Path | None = None,
    image_server: ImageServer | None = None,
    provider_options: bool = True,
    honoured_only: bool = False,
    other_providers: Collection[str] = (),
) -> st.SearchStrategy[VideoRequest]:
    """Requests `provider` must accept, drawn from what `caps` declares.

    They include settings the provider cannot honour exactly (an fps it does not output,
    a negative prompt it does not take, an over-long prompt it truncates), which are valid
    but must come back as warnings: `expected_warnings` lists them. `honoured_only=True`
    leaves those out. `other_providers` (installed ones: options for a provider that is
    not installed are refused as a likely typo) may carry options this one must ignore.
    """
    from reelgen.contract import VideoRequest

    return _valid_fields(
        caps, provider, budget, image_forms, image_dir, image_server, provider_options, honoured_only, other_providers
    ).map(lambda fields: VideoRequest(**fields))


def expected_warnings(request: VideoRequest, caps: Capabilities) -> frozenset[str]:
    """The request fields a provider with `caps` cannot honour exactly (each must be warned about)."""
    fields: set[str] = set()
    if caps.native_fps is not None and request.fps not in caps.native_fps:
        fields.add("fps")
    if (
        caps.prompt_max_chars is not None
        and caps.prompt_overflow == "truncate"
        and len(request.prompt) > caps.prompt_max_chars
    ):
        fields.add("prompt")
    if request.negative_prompt is not None:
        limit = caps.negative_prompt_max_chars
        if not caps.negative_prompt or (
            limit is not None and caps.prompt_overflow == "truncate" and len(request.negative_prompt) > limit
        ):
            fields.add("negative_prompt")
    if request.seed is not None and not caps.seed:
        fields.add("seed")
    if request.motion_strength is not None and not caps.motion_strength:
        fields.add("motion_strength")
    return frozenset(fields)


# -- invalid requests ------------------------------------------------------------------


def invalid_requests(
    caps: Capabilities,
    *,
    provider: str,
    stages: Sequence[str] = ("construct", "capabilities"),
    image_dir: Path | None = None,
) -> st.SearchStrategy[InvalidRequest]:
    """Requests that break one field each; see `InvalidRequest`."""
    from ._invalid import capability_cases, construct_cases

    base = _valid_fields(caps, provider, Budget(max_seconds=None), LOCAL_FORMS, image_dir, None, False, True, ())
    cases: list[st.SearchStrategy[InvalidRequest]] = []
    if "construct" in stages:
        cases.append(construct_cases(base, provider))
    if "capabilities" in stages:
        found = capability_cases(caps, provider, base, image_dir)
        if found is not None:
            cases.append(found)
    if not cases:
        raise ValueError(f"no invalid requests for stages {stages!r} with these capabilities")
    return st.one_of(*cases)


# -- capabilities and the contract types on their own ------------------------------------


def capabilities() -> st.SearchStrategy[Capabilities]:
    """Arbitrary self-consistent `Capabilities` (each admits at least one valid request)."""
    from ._capabilities import capabilities as build

    return build()


@st.composite
def _json_values(draw: st.DrawFn) -> dict[str, Any]:
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    )
    value = st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=6,
    )
    return draw(st.dictionaries(st.text(string.ascii_lowercase + "_", min_size=1, max_size=10), value, max_size=3))


def video_requests() -> st.SearchStrategy[VideoRequest]:
    """Any request the contract accepts, for no provider in particular."""
    from reelgen.capabilities import Capabilities

    anything = Capabilities(model="any", side_range=(1, MAX_SIDE))
    names = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_\-]{0,15}\Z")

    @st.composite
    def build(draw: st.DrawFn) -> VideoRequest:
        forms: tuple[ImageForm, ...] = ("bytes", "data_uri", "https", "http")
        small = Budget(max_image_pixels=64 * 64)  # small images keep examples fast
        request = draw(valid_requests(anything, provider="any", image_forms=forms, budget=small))
        options = draw(st.dictionaries(names, _json_values(), max_size=2))
        seed = draw(st.one_of(st.none(), st.integers(0, MAX_SEED)))
        return attrs.evolve(request, options=options, seed=seed)

    return build()


@st.composite
def _results(draw: st.DrawFn) -> VideoResult:
    from reelgen.contract import VideoResult

    width, height = draw(st.integers(2, 4096)), draw(st.integers(2, 4096))
    stamp = st.datetimes().map(lambda d: d.isoformat() + "Z")
    fields: dict[str, Any] = {
        "video_url": draw(st.sampled_from(["file:///videos/", "s3://bucket/videos/", "output/videos/"]))
        + draw(st.text(string.hexdigits.lower(), min_size=8, max_size=64))
        + ".mp4",
        "duration": draw(st.floats(0.01, 3600, allow_nan=False)),
        "fps": draw(st.floats(0.5, 240, allow_nan=False)),
        "seed": draw(st.one_of(st.none(), st.integers(0, MAX_SEED))),
        "size": f"{width}*{height}",
        "provider": draw(st.from_regex(r"\A[a-z_][a-z0-9_]{0,15}\Z")),
        "model": draw(st.text(min_size=1, max_size=30)),
        "sha256": draw(st.text("0123456789abcdef", min_size=64, max_size=64)),
        "bytes": draw(st.integers(1, 2**40)),
        "task_id": draw(st.one_of(st.none(), st.text(min_size=1, max_size=40))),
        "source_url": draw(st.one_of(st.none(), st.just("https://cdn.example.com/v.mp4?Expires=1&Signature=x"))),
        "expires_at": draw(st.one_of(st.none(), stamp)),
        "cached": draw(st.booleans()),
        "warnings": draw(st.lists(st.text(max_size=60), max_size=3)),
        "usage": draw(_json_values()),
    }
    return VideoResult(**fields)


def video_results() -> st.SearchStrategy[VideoResult]:
    """Any well-formed result (JSON-safe values), for serialization and cache tests."""
    return _results()
