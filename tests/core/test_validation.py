"""`check_request` and `check_options` against hand-built capabilities.

What the provider's API would reject is a `ValidationError`; what it would silently ignore
or change is a warning, and `strict` turns warnings into `StrictWarningError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelgen import Capabilities, OptionSpec, ResolutionTier, StrictWarningError, ValidationError, VideoRequest
from reelgen.validation import check_options, check_request, enforce_strict

P = "acme"
#: No limits at all, and support for every setting.
OPEN = Capabilities(model="m", image_url_schemes=("http", "https", "oss"), motion_strength=True)


def request(**fields: Any) -> VideoRequest:
    fields.setdefault("prompt", "a cat surfing")
    return VideoRequest(**fields)


def check(req: VideoRequest, **caps: Any) -> list[str]:
    return check_request(req, attrs.evolve(OPEN, **caps), provider=P)


def refused(req: VideoRequest, field: str, *fragments: str, **caps: Any) -> str:
    with pytest.raises(ValidationError) as info:
        check(req, **caps)
    assert not isinstance(info.value, StrictWarningError)
    assert info.value.field == field
    message = str(info.value)
    assert P in message or field == "options", message
    for fragment in fragments:
        assert fragment in message, message
    return message


def warned(req: VideoRequest, field: str, *fragments: str, **caps: Any) -> str:
    warnings = check(req, **caps)
    assert len(warnings) == 1, warnings
    (warning,) = warnings
    assert warning.startswith(f"{field}") and P in warning
    for fragment in fragments:
        assert fragment in warning, warning
    with pytest.raises(StrictWarningError) as info:
        enforce_strict(warnings, strict=True)
    assert info.value.warnings == warnings and warning in str(info.value) and "--strict" in str(info.value)
    enforce_strict(warnings, strict=False)
    return warning


@given(data=st.data())
def test_a_provider_without_limits_takes_every_valid_request(requests_st: Any, data: st.DataObject, png: bytes) -> None:
    req = data.draw(requests_st)
    if isinstance(req.reference_image, bytes):  # the strategy's bytes are not images
        req = attrs.evolve(req, reference_image=png)
    assert check_request(req, OPEN, provider=P) == []


def test_enforce_strict_without_warnings_is_silent() -> None:
    enforce_strict([], strict=True)


def test_strict_warning_error_is_a_validation_error() -> None:
    assert issubclass(StrictWarningError, ValidationError)
    assert StrictWarningError(["a"]).exit_code == 2


# --- duration ---------------------------------------------------------------------------------------


@given(duration=st.sampled_from([2.0, 5.0, 10.0]) | st.floats(0.1, 20))
def test_discrete_durations(duration: float) -> None:
    req = request(duration=duration)
    if duration in (2, 5, 10):
        assert check(req, durations=(2.0, 5.0, 10.0)) == []
    else:
        refused(req, "duration", "choose one of: 2, 5, 10 seconds", durations=(2.0, 5.0, 10.0))


@given(duration=st.floats(0.01, 100))
def test_duration_range_is_inclusive(duration: float) -> None:
    req = request(duration=duration)
    if 2 <= duration <= 15:
        assert check(req, duration_range=(2.0, 15.0)) == []
    else:
        refused(req, "duration", "out of range", "from 2 to 15", duration_range=(2.0, 15.0))


@pytest.mark.parametrize("duration, suggestion", [(5.5, "e.g. 6"), (2.2, "e.g. 2"), (1.2, "e.g. 2"), (40.5, "e.g. 15")])
def test_whole_seconds_only(duration: float, suggestion: str) -> None:
    refused(
        request(duration=duration),
        "duration",
        "whole seconds",
        suggestion,
        duration_range=(2.0, 15.0),
        integer_duration=True,
    )


def test_whole_seconds_accepted() -> None:
    assert check(request(duration=5), duration_range=(2.0, 15.0), integer_duration=True) == []


# --- fps -----------------------------------------------------------------------------------------------


@given(fps=st.floats(1, 120))
def test_native_fps_is_a_warning_not_an_error(fps: float) -> None:
    req = request(fps=fps)
    if fps == 30:
        assert check(req, native_fps=(30.0,)) == []
    else:
        warned(req, "fps", "always outputs 30 fps", "measured", native_fps=(30.0,))


@given(fps=st.floats(0.1, 240))
def test_fps_range(fps: float) -> None:
    req = request(fps=fps)
    if 8 <= fps <= 60:
        assert check(req, fps_range=(8.0, 60.0)) == []
    else:
        refused(req, "fps", "out of range", "8 to 60 fps", fps_range=(8.0, 60.0))


# --- size -----------------------------------------------------------------------------------------------


def test_exact_sizes() -> None:
    sizes = ("1280*720", "720*1280")
    assert check(request(size="1280x720"), sizes=sizes) == []
    refused(request(size="1920*1080"), "size", "choose one of: 1280*720, 720*1280", sizes=sizes)


def test_declared_sizes_may_be_spelled_either_way() -> None:
    assert check(request(size="1280*720"), sizes=("1280x720", "720 X 1280")) == []
    assert check(request(size="720x1280"), sizes=("1280x720", "720 X 1280")) == []
    refused(request(size="640*360"), "size", "choose one of: 1280x720", sizes=("1280x720",))


def test_resolution_tiers_leave_size_to_the_provider() -> None:
    tiers = (ResolutionTier(name="720P", pixels=921600, multiple_of=16),)
    assert check(request(size="1000*777"), sizes=("1280*720",), resolution_tiers=tiers, size_multiple_of=16) == []


@given(width=st.integers(1, 5000), height=st.integers(1, 5000))
def test_side_range(width: int, height: int) -> None:
    req = request(size=f"{width}*{height}")
    if 64 <= width <= 2048 and 64 <= height <= 2048:
        assert check(req, side_range=(64, 2048)) == []
    else:
        refused(req, "size", "sides from 64 to 2048 pixels", side_range=(64, 2048))


@given(width=st.integers(1, 4096), height=st.integers(1, 4096), multiple=st.sampled_from([2, 8, 16]))
def test_size_multiple_suggests_a_valid_size(width: int, height: int, multiple: int) -> None:
    req = request(size=f"{width}*{height}")
    if width % multiple == 0 and height % multiple == 0:
        assert check(req, size_multiple_of=multiple) == []
        return
    message = refused(req, "size", f"multiples of {multiple}", size_multiple_of=multiple)
    suggestion = message.split("(e.g. ")[1].rstrip(")")
    suggested = request(size=suggestion)  # a real size, not "0*720"
    assert check(suggested, size_multiple_of=multiple) == []


# --- text -----------------------------------------------------------------------------------------------


@given(length=st.integers(1, 60))
def test_long_prompt_rejected_or_truncated(length: int) -> None:
    req = request(prompt="x" * length)
    if length <= 40:
        assert check(req, prompt_max_chars=40) == []
        return
    refused(req, "prompt", f"prompt is {length} characters", "at most 40", "shorten", prompt_max_chars=40)
    warned(req, "prompt", "silently cuts", prompt_max_chars=40, prompt_overflow="truncate")


def test_prompt_length_counts_characters_not_bytes() -> None:
    assert check(request(prompt="猫" * 40), prompt_max_chars=40) == []


def test_negative_prompt() -> None:
    req = request(negative_prompt="blurry, low quality")
    warned(req, "negative_prompt", "does not support it", "not sent", negative_prompt=False)
    refused(req, "negative_prompt", "at most 5", "shorten", negative_prompt_max_chars=5)
    warned(req, "negative_prompt", "silently cuts", negative_prompt_max_chars=5, prompt_overflow="truncate")
    assert check(req, negative_prompt_max_chars=100) == []


# --- seed and motion -------------------------------------------------------------------------------------


@given(seed=st.integers(0, 2**63 - 1))
def test_seed_range(seed: int) -> None:
    req = request(seed=seed)
    if seed <= 2**31 - 1:
        assert check(req, seed_range=(0, 2**31 - 1)) == []
    else:
        refused(req, "seed", "out of range", f"0 to {2**31 - 1}", seed_range=(0, 2**31 - 1))


def test_seed_not_supported_is_a_warning() -> None:
    warned(request(seed=7), "seed", "does not take a seed", "7 is not sent", seed=False)
    assert check(request(), seed=False) == []


def test_motion_strength_not_supported_is_a_warning() -> None:
    warned(request(motion_strength=0.3), "motion_strength", "no motion strength", "0.3", motion_strength=False)
    assert check(request(motion_strength=0.3), motion_strength=True) == []


def test_every_unsupported_setting_warns_once() -> None:
    req = request(negative_prompt="blur", seed=3, motion_strength=0.5, fps=24)
    warnings = check(req, negative_prompt=False, seed=False, motion_strength=False, native_fps=(30.0,))
    assert [w.split(":")[0] for w in warnings] == ["fps", "negative_prompt", "seed", "motion_strength"]
    with pytest.raises(StrictWarningError) as info:
        enforce_strict(warnings, strict=True)
    assert all(w in str(info.value) for w in warnings)


# --- reference image --------------------------------------------------------------------------------------


def test_image_required() -> None:
    refused(request(), "reference_image", "image-to-video", "give reference_image", requires_reference_image=True)


def test_image_not_accepted(png: bytes) -> None:
    refused(
        request(reference_image=png),
        "reference_image",
        "does not take a reference image",
        accepts_reference_image=False,
    )


@pytest.mark.parametrize("url, schemes, ok", [
    ("oss://b/cat.png", ("http", "https"), False), ("https://x.test/c.png", ("http", "https"), True),
    ("http://x.test/c.png", ("https",), False), ("oss://b/c.png", ("https", "oss"), True),
])  # fmt: skip
def test_remote_url_schemes(url: str, schemes: tuple[str, ...], ok: bool) -> None:
    req = request(reference_image=url)
    if ok:
        assert check(req, image_url_schemes=schemes) == []
    else:
        refused(req, "reference_image", "cannot fetch", "a local path or bytes", image_url_schemes=schemes)


def test_local_image_is_read_and_checked(tmp_path: Path, make_image: Any) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(make_image("PNG", (50, 40), mode="RGBA"))
    req = request(reference_image=str(path))
    assert check(req) == []
    refused(req, "reference_image", "alpha", image_alpha=False)
    refused(req, "reference_image", "accepts JPEG", image_formats=("JPEG",))
    refused(req, "reference_image", "resize", image_side_range=(64, 4096))
    refused(req, "reference_image", "compress", image_max_bytes=10)
    with pytest.raises(ValidationError, match=r"gone\.png.*does not exist") as info:
        check(request(reference_image=str(tmp_path / "gone.png")))
    assert info.value.field == "reference_image"


def test_remote_image_is_never_fetched() -> None:
    # An unroutable URL: if validation tried to fetch it, it would fail or hang.
    assert check(request(reference_image="https://192.0.2.1/cat.png"), image_max_bytes=1) == []


# --- options ----------------------------------------------------------------------------------------------

SPECS = {
    "audio": OptionSpec(type="bool", doc="", default=True),
    "steps": OptionSpec(type="int", doc="", minimum=1, maximum=50),
    "guidance": OptionSpec(type="float", doc="", minimum=0.0),
    "ceiling": OptionSpec(type="float", doc="", maximum=2.0),
    "style": OptionSpec(type="str", doc="", choices=("anime", "film")),
    "prompt_extend": OptionSpec(type="bool", doc="", default=True),
    "shot_type": OptionSpec(type="str", doc="", choices=("single", "multi"), requires=("prompt_extend=true",)),
}


def options_refused(options: dict[str, Any], *fragments: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_options(options, SPECS, provider=P)
    assert info.value.field == "options"
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_valid_options_pass() -> None:
    check_options(
        {"audio": False, "steps": 50, "guidance": 3, "style": "film", "shot_type": "multi"}, SPECS, provider=P
    )
    check_options({}, SPECS, provider=P)


@given(name=st.text(min_size=1).filter(lambda n: n not in SPECS))
def test_unknown_option_lists_the_known_ones(name: str) -> None:
    options_refused({name: 1}, f"unknown option {P}.{name}", "audio, ceiling, guidance")


def test_unknown_option_when_none_are_known() -> None:
    with pytest.raises(ValidationError, match="takes: none"):
        check_options({"x": 1}, {}, provider=P)


@pytest.mark.parametrize("name, value", [
    ("audio", 1), ("audio", "false"), ("steps", True), ("steps", 2.0), ("steps", "3"), ("guidance", True),
    ("guidance", "1.5"), ("style", 3), ("style", None),
])  # fmt: skip
def test_option_types(name: str, value: object) -> None:
    options_refused({name: value}, f"{P}.{name} must be {SPECS[name].type}")


@given(steps=st.integers())
def test_option_bounds(steps: int) -> None:
    if 1 <= steps <= 50:
        check_options({"steps": steps}, SPECS, provider=P)
    else:
        options_refused({"steps": steps}, "between 1 and 50", repr(steps))


def test_one_sided_bounds_read_well() -> None:
    options_refused({"guidance": -1.0}, "at least 0")
    options_refused({"ceiling": 2.5}, "at most 2")
    for name, value in (("guidance", -1.0), ("ceiling", 2.5)):
        with pytest.raises(ValidationError) as info:
            check_options({name: value}, SPECS, provider=P)
        assert "None" not in str(info.value)


def test_option_choices() -> None:
    options_refused({"style": "noir"}, "one of anime, film", "'noir'")


def test_option_requires_another() -> None:
    options_refused({"shot_type": "multi", "prompt_extend": False}, f"{P}.shot_type needs {P}.prompt_extend=true")
    check_options({"shot_type": "multi", "prompt_extend": True}, SPECS, provider=P)
    check_options({"shot_type": "multi"}, SPECS, provider=P)  # the default satisfies it


def test_check_request_checks_only_this_providers_options() -> None:
    caps = attrs.evolve(OPEN, options=SPECS)
    req = request(options={P: {"steps": 10}, "other": {"whatever": object.__name__}})
    assert check_request(req, caps, provider=P) == []
    with pytest.raises(ValidationError, match="unknown option"):
        check_request(request(options={P: {"nope": 1}}), caps, provider=P)


def test_requires_without_a_value_needs_the_other_option_truthy() -> None:
    specs = {
        "audio_url": OptionSpec(type="str", doc="", requires=("audio",)),
        "audio": OptionSpec(type="bool", doc="", default=False),
    }
    check_options({"audio_url": "https://x/a.mp3", "audio": True}, specs, provider="p")
    with pytest.raises(ValidationError, match=r"p\.audio_url needs p\.audio to be set"):
        check_options({"audio_url": "https://x/a.mp3"}, specs, provider="p")
