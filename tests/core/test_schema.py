"""The exported JSON Schema agrees with the attrs classes and with what they accept."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from reelgen import SCHEMA_VERSION, VideoRequest, VideoResult
from reelgen._schema import json_schema
from reelgen.serialization import to_json

SCHEMA = json_schema()


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{name}"})


REQUEST = validator("VideoRequest")
RESULT = validator("VideoResult")


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_is_versioned() -> None:
    assert SCHEMA["version"] == SCHEMA_VERSION
    major, minor = SCHEMA_VERSION.split(".")
    assert major.isdigit() and minor.isdigit()
    assert SCHEMA["$id"].endswith(f"/{SCHEMA_VERSION}")


def test_schema_is_plain_json() -> None:
    assert json.loads(json.dumps(SCHEMA)) == SCHEMA


@pytest.mark.parametrize("cls", [VideoRequest, VideoResult])
def test_properties_are_exactly_the_attrs_fields(cls: type) -> None:
    definition = SCHEMA["$defs"][cls.__name__]
    fields = {field.name for field in attrs.fields(cls)}
    assert set(definition["properties"]) == fields
    assert definition["additionalProperties"] is False
    required = {field.name for field in attrs.fields(cls) if field.default is attrs.NOTHING}
    assert required <= set(definition["required"]) <= fields


@given(st.data())
def test_every_valid_request_validates(requests_st: Any, data: st.DataObject) -> None:
    request = data.draw(requests_st)
    errors = [error.message for error in REQUEST.iter_errors(json.loads(to_json(request)))]
    assert not errors


@given(st.data())
def test_every_result_validates(results_st: Any, data: st.DataObject) -> None:
    document = json.loads(to_json(data.draw(results_st)))
    assert not [error.message for error in RESULT.iter_errors(document)]


def test_a_realistic_result_validates() -> None:
    result = VideoResult(
        video_url="file:///home/me/output/videos/3f2a.mp4", duration=5.0, fps=30.0, seed=1234, size="1280*720",
        provider="bailian_wan", model="wan2.6-i2v-flash", task_id="0385dc79-5ff8-4d82-bcb6-0000000000",
        source_url="https://dashscope-result.oss-cn-beijing.aliyuncs.com/x.mp4?Expires=1",
        expires_at="2025-01-02T03:04:05+00:00", sha256="ab" * 32, bytes=2_345_678, cached=False,
        warnings=["fps: bailian_wan always outputs 30 fps; 24 fps was asked for"],
        usage={"duration": 5, "video_count": 1, "SR": 720},
    )  # fmt: skip
    assert not list(RESULT.iter_errors(json.loads(to_json(result))))


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"prompt": ""},
        {"prompt": "p", "duration": 0},
        {"prompt": "p", "fps": -1},
        {"prompt": "p", "size": "1280"},
        {"prompt": "p", "seed": -1},
        {"prompt": "p", "motion_strength": 1.5},
        {"prompt": "p", "reference_image": ""},
        {"prompt": "p", "reference_image": {"b64": "x"}},
        {"prompt": "p", "options": {"p": 1}},
        {"prompt": "p", "options": {"1p": {}}},
        {"prompt": "p", "bogus": 1},
    ],
)
def test_schema_refuses_what_the_contract_refuses(document: dict[str, Any]) -> None:
    assert not REQUEST.is_valid(document)
