"""JSON in and out of the contract (`reelgen.serialization`), with cattrs."""

from __future__ import annotations

import base64
import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelgen import Capabilities, OptionSpec, ResolutionTier, ValidationError, VideoRequest, VideoResult
from reelgen.serialization import from_json, structure, to_json, unstructure

REQUEST_FIELDS = {field.name for field in attrs.fields(VideoRequest)}
RESULT_FIELDS = {field.name for field in attrs.fields(VideoResult)}


def strict_loads(text: str) -> Any:
    """`json.loads` that refuses NaN and Infinity, which are not JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in JSON output: {text}")

    return json.loads(text, parse_constant=refuse)


def result_json(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "video_url": "file:///out/videos/abc.mp4", "duration": 5.0, "fps": 30.0, "seed": 7, "size": "1280*720",
        "provider": "preview", "model": "preview-1", "task_id": None, "source_url": None, "expires_at": None,
        "sha256": "a" * 64, "bytes": 1000, "cached": False, "warnings": [], "usage": {},
    }  # fmt: skip
    data.update(changes)
    return data


@given(data=st.data(), ensure_ascii=st.booleans())
def test_requests_round_trip_through_json(requests_st: Any, data: st.DataObject, ensure_ascii: bool) -> None:
    request = data.draw(requests_st)
    text = to_json(request, ensure_ascii=ensure_ascii)
    document = strict_loads(text)
    assert set(document) == REQUEST_FIELDS
    assert from_json(text, VideoRequest) == request
    assert from_json(text.encode("utf-8"), VideoRequest) == request


@given(content=st.binary(min_size=1, max_size=256))
def test_bytes_images_travel_as_base64(content: bytes) -> None:
    request = VideoRequest(prompt="p", reference_image=content)
    document = strict_loads(to_json(request))
    assert document["reference_image"] == {"base64": base64.b64encode(content).decode("ascii")}
    assert from_json(json.dumps(document), VideoRequest).reference_image == content


@given(prompt=st.text(min_size=1).filter(str.strip), negative=st.text(min_size=1).filter(str.strip))
def test_unicode_text_is_kept_exactly(prompt: str, negative: str) -> None:
    request = VideoRequest(prompt=prompt, negative_prompt=negative)
    back = from_json(to_json(request), VideoRequest)
    assert (back.prompt, back.negative_prompt) == (prompt, negative)


def test_json_normalizes_what_the_constructor_normalizes() -> None:
    document = {"prompt": "p", "size": "640 x 360", "duration": 3, "negative_prompt": " ", "options": {"p": {"t": 1}}}
    request = from_json(json.dumps(document), VideoRequest)
    assert (request.size, request.duration, request.negative_prompt) == ("640*360", 3.0, None)
    assert isinstance(request.duration, float)
    assert request == VideoRequest(prompt="p", size="640*360", duration=3.0, options={"p": {"t": 1}})


@given(name=st.text(min_size=1, max_size=20).filter(lambda n: n not in REQUEST_FIELDS))
def test_unknown_request_fields_are_refused_by_name(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        structure({"prompt": "p", name: 1}, VideoRequest)
    assert info.value.field == name
    message = str(info.value)
    assert "unknown request field" in message and name in message
    assert '"options"' in message  # where provider-specific settings go instead


def test_missing_prompt_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        from_json('{"duration": 5}', VideoRequest)
    assert info.value.field == "prompt" and "required" in str(info.value)


@pytest.mark.parametrize("text", ["[]", '"a cat"', "5", "null", "true"])
def test_a_request_must_be_a_json_object(text: str) -> None:
    with pytest.raises(ValidationError, match="must be a JSON object"):
        from_json(text, VideoRequest)


@pytest.mark.parametrize("text", ["", "{", '{"prompt": }', b"\xff\xfe{}", b"\x80", "{'prompt': 'single quotes'}"])
def test_text_that_is_not_json_is_refused(text: str | bytes) -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        from_json(text, VideoRequest)


@pytest.mark.parametrize(
    "image, fragment",
    [
        ({"base64": "not base64!"}, "not valid base64"),
        ({"base64": "abc"}, "not valid base64"),  # bad padding
        ({"base64": ""}, "empty"),
        ({"base64": 5}, '{"base64": "..."}'),
        ({"b64": "aGk="}, '{"base64": "..."}'),
        ({"base64": "aGk=", "mime": "image/png"}, '{"base64": "..."}'),
        (5, '{"base64": "..."}'),
        (["aGk="], '{"base64": "..."}'),
    ],
)
def test_bad_json_images_are_refused(image: object, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        structure({"prompt": "p", "reference_image": image}, VideoRequest)
    assert info.value.field == "reference_image"
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "field, value",
    [("duration", "5"), ("fps", None), ("size", 1280), ("seed", 1.5), ("seed", "7"), ("motion_strength", 2),
     ("options", []), ("prompt", None), ("prompt", "")],
)  # fmt: skip
def test_json_values_are_validated_like_the_constructor(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        from_json(json.dumps({"prompt": "p", field: value}), VideoRequest)
    assert info.value.field == field


def test_nan_in_json_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        from_json('{"prompt": "p", "fps": NaN}', VideoRequest)
    assert info.value.field == "fps"


# --- results --------------------------------------------------------------------------------------


@given(st.data())
def test_results_round_trip_through_json(results_st: Any, data: st.DataObject) -> None:
    result = data.draw(results_st)
    text = to_json(result)
    assert set(strict_loads(text)) == RESULT_FIELDS
    assert from_json(text, VideoResult) == result


def test_result_json_with_integers_for_numbers_is_accepted() -> None:
    result = structure(result_json(duration=5, fps=24), VideoResult)
    assert (result.duration, result.fps) == (5.0, 24.0)
    assert isinstance(result.duration, float) and isinstance(result.fps, float)


@pytest.mark.parametrize(
    "field, value",
    [
        ("cached", "false"), ("cached", 0), ("video_url", 1), ("duration", "5"), ("duration", True),
        ("bytes", "1000"), ("bytes", 10.5), ("seed", "7"), ("warnings", "one warning"), ("warnings", [1]),
        ("usage", []), ("provider", None),
    ],
)  # fmt: skip
def test_result_json_with_wrong_types_is_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        structure(result_json(**{field: value}), VideoResult)
    assert f"VideoResult.{field}" in str(info.value)


def test_result_json_with_missing_or_extra_fields_is_refused() -> None:
    data = result_json(extra="x")
    del data["sha256"]
    with pytest.raises(ValidationError) as info:
        structure(data, VideoResult)
    message = str(info.value)
    assert "sha256" in message and "required field missing" in message
    assert "extra" in message


def test_capabilities_unstructure_to_plain_json() -> None:
    caps = Capabilities(
        model="m", durations=(5.0, 10.0), resolution_tiers=(ResolutionTier(name="720P", pixels=921600),),
        options={"audio": OptionSpec(type="bool", doc="sound", default=True)},
    )  # fmt: skip
    document = strict_loads(json.dumps(caps.to_dict()))
    assert document["durations"] == [5.0, 10.0]
    assert document["resolution_tiers"] == [{"name": "720P", "pixels": 921600, "multiple_of": 1}]
    assert document["options"]["audio"]["default"] is True


def test_unstructure_is_json_ready(png: bytes) -> None:
    request = VideoRequest(prompt="p", reference_image=png, options={"p": {"x": [1, 2]}})
    assert json.loads(json.dumps(unstructure(request))) == unstructure(request)


def test_a_left_out_field_stays_left_out_through_json() -> None:
    """So that it still takes the provider's declared default when read back."""
    from reelgen.contract import is_omitted

    request = from_json(to_json(VideoRequest(prompt="x", fps=12)), VideoRequest)
    assert is_omitted(request.duration) and is_omitted(request.size) and not is_omitted(request.fps)
    assert request == VideoRequest(prompt="x", fps=12)
