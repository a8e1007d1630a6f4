"""`VideoRequest` and `VideoResult`: what is accepted, how it is normalized, and what is refused.

Every refusal is a `ValidationError` whose `.field` names the field and whose message says
what to fix.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reelgen import ValidationError, VideoRequest, VideoResult
from reelgen.contract import parse_size

MAX_SEED = 2**63 - 1
SIZE_SEPARATORS = ("*", "x", "X", "×", " * ", " x ", " X ")


def rejects(field: str, *fragments: str, **fields: Any) -> ValidationError:
    """Build a request with `fields` and check it is refused for `field`, with a helpful message."""
    fields.setdefault("prompt", "a cat surfing")
    with pytest.raises(ValidationError) as info:
        VideoRequest(**fields)
    error = info.value
    assert error.field == field, f"{fields!r}: field {error.field!r}, message {error}"
    message = str(error)
    assert field.rstrip("s") in message, message  # "options" errors say "option ..."
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return error


# --- valid requests ---------------------------------------------------------------------------


def test_defaults() -> None:
    request = VideoRequest(prompt="a cat surfing")
    assert (request.duration, request.fps, request.size) == (5.0, 30.0, "1280*720")
    assert (request.width, request.height) == (1280, 720)
    assert request.seed is None and request.reference_image is None and request.motion_strength is None
    assert request.negative_prompt is None and request.options == {}


def test_request_is_frozen() -> None:
    request = VideoRequest(prompt="a cat surfing")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.prompt = "a dog"  # type: ignore[misc]


@given(data=st.data())
def test_valid_requests_are_accepted_and_normalized(requests_st: Any, data: st.DataObject) -> None:
    request = data.draw(requests_st)
    width, height = parse_size(request.size)
    assert request.size == f"{width}*{height}"
    assert isinstance(request.duration, float) and request.duration > 0 and math.isfinite(request.duration)
    assert isinstance(request.fps, float) and request.fps > 0 and math.isfinite(request.fps)
    assert request.prompt.strip()
    assert request.negative_prompt is None or request.negative_prompt.strip()
    # Building it again from its own fields changes nothing: normalization is idempotent.
    assert attrs.evolve(request) == request


@given(
    width=st.integers(1, 16384),
    height=st.integers(1, 16384),
    separator=st.sampled_from(SIZE_SEPARATORS),
    pad=st.sampled_from(("", " ", "  ", "\t")),
)
def test_size_accepts_every_spelling_and_normalizes_to_w_star_h(
    width: int, height: int, separator: str, pad: str
) -> None:
    request = VideoRequest(prompt="p", size=f"{pad}{width}{separator}{height}{pad}")
    assert request.size == f"{width}*{height}"
    assert (request.width, request.height) == (width, height)


@pytest.mark.parametrize("spelling", ["1280*720", "1280x720", "1280X720", "1280 X 720", "1280 x 720", " 1280*720 "])
def test_size_variants_are_the_same_request(spelling: str) -> None:
    assert VideoRequest(prompt="p", size=spelling) == VideoRequest(prompt="p", size="1280*720")


def test_negative_prompt_blank_means_none() -> None:
    assert VideoRequest(prompt="p", negative_prompt="  \n").negative_prompt is None
    assert VideoRequest(prompt="p", negative_prompt="blur").negative_prompt == "blur"


@given(st.integers(0, MAX_SEED))
def test_every_seed_in_range_is_kept(seed: int) -> None:
    assert VideoRequest(prompt="p", seed=seed).seed == seed


@given(st.floats(0.0, 1.0) | st.sampled_from([0, 1]))
def test_motion_strength_in_range_is_kept_as_float(value: float) -> None:
    kept = VideoRequest(prompt="p", motion_strength=value).motion_strength
    assert kept == value and isinstance(kept, float)


def test_negative_zero_motion_strength_is_zero() -> None:
    # -0.0 == 0.0, but it would serialize (and hash into the cache key) differently.
    value = VideoRequest(prompt="p", motion_strength=-0.0).motion_strength
    assert value is not None and math.copysign(1.0, value) == 1.0


def test_reference_image_forms(tmp_path: Path) -> None:
    assert VideoRequest(prompt="p", reference_image=bytearray(b"\x89PNG")).reference_image == b"\x89PNG"
    assert VideoRequest(prompt="p", reference_image=memoryview(b"abc")).reference_image == b"abc"
    assert VideoRequest(prompt="p", reference_image=tmp_path / "cat.png").reference_image == str(tmp_path / "cat.png")
    for url in ("https://x.test/cat.png", "HTTP://x.test/a", "oss://bucket/cat.png", "file:///tmp/cat.png"):
        assert VideoRequest(prompt="p", reference_image=url).reference_image == url
    data_uri = "data:image/png;base64,iVBORw0KGgo="
    assert VideoRequest(prompt="p", reference_image=data_uri).reference_image == data_uri


def test_options_are_copied_deeply_and_json_shaped() -> None:
    nested = {"steps": [1, 2], "inner": {"a": 1}}
    options: dict[str, Any] = {"prov": {"tuple": (1, 2), "nested": nested}}
    request = VideoRequest(prompt="p", options=options)
    # Later changes to the caller's objects do not reach a frozen request.
    nested["steps"].append(3)
    nested["inner"]["a"] = 2
    options["prov"]["added"] = True
    assert request.options == {"prov": {"tuple": [1, 2], "nested": {"steps": [1, 2], "inner": {"a": 1}}}}
    # options_for hands out a copy.
    request.options_for("prov")["added"] = True
    assert "added" not in request.options["prov"]
    assert request.options_for("someone_else") == {}


# --- invalid requests ---------------------------------------------------------------------------


@given(st.text(alphabet=" \t\n\r\x0b\x0c\u00a0\u2003\u3000", max_size=10))
def test_blank_prompt_is_refused(prompt: str) -> None:
    rejects("prompt", "empty", "describe", prompt=prompt)


@pytest.mark.parametrize("prompt", [None, 7, b"bytes prompt", ["a"], {"text": "a"}])
def test_non_string_prompt_is_refused(prompt: object) -> None:
    rejects("prompt", "must be a string", prompt=prompt)


def test_prompt_is_required() -> None:
    with pytest.raises(TypeError):
        VideoRequest()  # type: ignore[call-arg]


@pytest.mark.parametrize("value", [7, b"x", ["no"]])
def test_non_string_negative_prompt_is_refused(value: object) -> None:
    rejects("negative_prompt", "string", negative_prompt=value)


not_positive = st.floats(max_value=0) | st.integers(max_value=0)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
not_numbers = st.sampled_from([True, False, "5", "five", None, [5], {"s": 5}, b"5"])


@pytest.mark.parametrize("field", ["duration", "fps"])
@given(value=not_positive | non_finite)
def test_duration_and_fps_must_be_finite_and_positive(field: str, value: float) -> None:
    rejects(field, "finite number greater than 0", **{field: value})


@pytest.mark.parametrize("field", ["duration", "fps"])
@given(value=not_numbers)
def test_duration_and_fps_must_be_numbers(field: str, value: object) -> None:
    rejects(field, "must be a number", **{field: value})


@pytest.mark.parametrize("field", ["duration", "fps", "motion_strength"])
def test_numbers_too_large_for_a_float_are_refused_cleanly(field: str) -> None:
    rejects(field, **{field: 10**400})


@pytest.mark.parametrize(
    "size",
    [
        "1280", "a*b", "1280*", "*720", "-1280*720", "1280.5*720", "1280*720*3", "", "  ", "12 34", "1280/720",
        "123456*1", "\u0661\u0662\u0668\u0660*720", "1280*720\nx",
    ],
)  # fmt: skip
def test_malformed_sizes_are_refused(size: str) -> None:
    rejects("size", "'W*H'", "1280*720", size=size)


@pytest.mark.parametrize("size", ["0*720", "720*0", "99999*1", "1*16385", "16385x16385"])
def test_sizes_out_of_range_are_refused(size: str) -> None:
    rejects("size", "between 1 and 16384 pixels", size=size)


@given(st.text(max_size=20))
def test_size_either_parses_or_is_refused_with_validation_error(text: str) -> None:
    try:
        width, height = parse_size(text)
    except ValidationError as error:
        assert error.field == "size"
        return
    assert 1 <= width <= 16384 and 1 <= height <= 16384
    assert VideoRequest(prompt="p", size=text).size == f"{width}*{height}"


@pytest.mark.parametrize("size", [1280, None, (1280, 720), b"1280*720"])
def test_non_string_size_is_refused(size: object) -> None:
    rejects("size", "string", "1280*720", size=size)


@given(st.integers(max_value=-1) | st.integers(min_value=MAX_SEED + 1))
def test_seed_out_of_range_is_refused(seed: int) -> None:
    rejects("seed", "between 0 and", seed=seed)


@given(st.floats() | st.sampled_from([True, False, "7", [7]]))
def test_non_integer_seed_is_refused(seed: object) -> None:
    rejects("seed", "whole number", seed=seed)


@given(
    st.floats(max_value=0, exclude_max=True)
    | st.floats(min_value=1, exclude_min=True)
    | st.integers(min_value=2)
    | st.integers(max_value=-1)
    | non_finite
)
def test_motion_strength_outside_0_1_is_refused(value: float) -> None:
    rejects("motion_strength", "0.0 to 1.0", motion_strength=value)


@pytest.mark.parametrize("value", [True, False, "0.5", [0.5]])
def test_non_number_motion_strength_is_refused(value: object) -> None:
    rejects("motion_strength", "number from 0.0 to 1.0", motion_strength=value)


@pytest.mark.parametrize("url", ["s3://bucket/cat.png", "ftp://host/cat.png", "gs://b/c.png", "javascript://x"])
def test_reference_image_with_unsupported_scheme_is_refused(url: str) -> None:
    rejects("reference_image", "unsupported URL scheme", "https://", reference_image=url)


@pytest.mark.parametrize("value", ["", "   ", b"", bytearray()])
def test_empty_reference_image_is_refused(value: object) -> None:
    rejects("reference_image", "empty", reference_image=value)


@pytest.mark.parametrize("value", [7, 1.5, ["cat.png"], {"path": "cat.png"}, object()])
def test_reference_image_of_wrong_type_is_refused(value: object) -> None:
    rejects("reference_image", "URL", "path", "bytes", reference_image=value)


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["bailian_wan"], "mapping of provider name"),
        ("audio=false", "mapping of provider name"),
        (7, "mapping of provider name"),
        ({"audio": False}, "namespaced by provider"),  # forgot the provider level
        ({"bailian_wan": [1]}, "namespaced by provider"),
        ({"": {}}, "provider name"),
        ({"1abc": {}}, "provider name"),
        ({"bailian wan": {}}, "provider name"),
        ({"bailian.wan": {}}, "provider name"),
        ({"bailian_wan\n": {}}, "provider name"),
        ({7: {}}, "provider name"),
        ({"p": {"x": object()}}, "JSON value"),
        ({"p": {"x": {1, 2}}}, "JSON value"),
        ({"p": {"x": b"raw"}}, "JSON value"),
        ({"p": {"x": 1j}}, "JSON value"),
        ({"p": {"x": [1, {"y": object()}]}}, "p.x[1].y"),
        ({"p": {"x": {3: "a"}}}, "non-string key"),
        ({"p": {3: "a"}}, "non-string key"),
    ],
)  # fmt: skip
def test_bad_options_are_refused(options: object, fragment: str) -> None:
    rejects("options", fragment, options=options)


@given(
    value=non_finite,
    wrap=st.sampled_from([lambda v: v, lambda v: [0, v], lambda v: {"deep": {"er": v}}, lambda v: (v,)]),
)
def test_non_finite_option_values_are_refused(value: float, wrap: Any) -> None:
    rejects("options", "finite number", options={"p": {"x": wrap(value)}})


@given(st.data())
def test_one_bad_field_spoils_any_valid_request(requests_st: Any, data: st.DataObject) -> None:
    request = data.draw(requests_st)
    field, bad = data.draw(
        st.sampled_from(
            [
                ("prompt", ""), ("duration", 0), ("fps", math.nan), ("size", "1280"), ("seed", -1),
                ("motion_strength", 1.5), ("reference_image", "s3://b/k"), ("options", {"p": 1}),
                ("negative_prompt", 3),
            ]
        )
    )  # fmt: skip
    with pytest.raises(ValidationError) as info:
        attrs.evolve(request, **{field: bad})
    assert info.value.field == field


# --- results ---------------------------------------------------------------------------------------


def test_result_collections_are_copied() -> None:
    warnings = ["fps: 30 not 24"]
    usage = {"duration": 5}
    result = VideoResult(
        video_url="file:///v.mp4", duration=5.0, fps=30.0, seed=1, size="2*2", provider="p", model="m",
        sha256="0" * 64, bytes=1, warnings=warnings, usage=usage,
    )  # fmt: skip
    warnings.append("later")
    usage["later"] = 1
    assert result.warnings == ["fps: 30 not 24"] and result.usage == {"duration": 5}
    assert (result.task_id, result.source_url, result.expires_at, result.cached) == (None, None, None, False)


@given(st.data())
def test_results_compare_by_value(results_st: Any, data: st.DataObject) -> None:
    result = data.draw(results_st)
    assert attrs.evolve(result) == result
    assume(result.bytes != 1)
    assert attrs.evolve(result, bytes=1) != result
