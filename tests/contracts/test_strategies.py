"""The strategies agree with the core's validation, for any provider's capabilities.

Valid requests pass `check_request` and are warned about exactly where
`expected_warnings` says; every invalid request fails at the stage and on the field it
claims. If these fail, either a strategy or `reelgen.validation` is wrong.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reelgen import Capabilities, ValidationError, VideoRequest, VideoResult
from reelgen.serialization import from_json, to_json
from reelgen.validation import check_request
from reelgen_contracts import strategies as rs
from reelgen_contracts.images import LOCAL_FORMS, encode_image

PROVIDER = "prov"
relaxed = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def _mentions(warnings: list[str], field: str) -> bool:
    return any(field in warning for warning in warnings)


@relaxed
@given(data=st.data(), caps=rs.capabilities())
def test_valid_requests_pass_the_core_checks(data: st.DataObject, caps: Capabilities) -> None:
    request = data.draw(rs.valid_requests(caps, provider=PROVIDER))
    warnings = check_request(request, caps, provider=PROVIDER)
    for field in rs.expected_warnings(request, caps):
        assert _mentions(warnings, field), (field, warnings)


@relaxed
@given(data=st.data(), caps=rs.capabilities())
def test_honoured_only_requests_draw_no_warnings(data: st.DataObject, caps: Capabilities) -> None:
    request = data.draw(rs.valid_requests(caps, provider=PROVIDER, honoured_only=True))
    assert rs.expected_warnings(request, caps) == frozenset()
    assert check_request(request, caps, provider=PROVIDER) == []


@relaxed
@given(data=st.data(), caps=rs.capabilities())
def test_invalid_requests_fail_where_they_say(data: st.DataObject, caps: Capabilities) -> None:
    case = data.draw(rs.invalid_requests(caps, provider=PROVIDER))
    if case.stage == "construct":
        with pytest.raises(ValidationError) as raised:
            case.build()
    else:
        request = case.build()
        with pytest.raises(ValidationError) as raised:
            check_request(request, caps, provider=PROVIDER)
    assert raised.value.field == case.field, (case, raised.value)


@relaxed
@given(data=st.data(), caps=rs.capabilities())
def test_budget_is_respected_where_the_capabilities_allow(data: st.DataObject, caps: Capabilities) -> None:
    budget = rs.Budget(max_seconds=3, max_pixels=320 * 240, max_fps=30)
    request = data.draw(rs.valid_requests(caps, provider=PROVIDER, budget=budget))
    cheapest = data.draw(rs.valid_requests(caps, provider=PROVIDER, budget=rs.Budget(max_seconds=0, max_pixels=0)))
    # Over budget only where the capabilities allow nothing cheaper.
    assert request.duration <= max(3, cheapest.duration)
    assert request.width * request.height <= max(320 * 240, cheapest.width * cheapest.height) or caps.resolution_tiers


@settings(max_examples=30, deadline=None)
@given(caps=rs.capabilities(), data=st.data())
def test_every_local_image_form_is_accepted(caps: Capabilities, data: st.DataObject) -> None:
    if not caps.accepts_reference_image:
        return
    form = data.draw(st.sampled_from(LOCAL_FORMS))
    image = data.draw(rs.reference_images(caps, forms=[form]))
    request = VideoRequest(prompt="p", reference_image=image)
    from reelgen.validation import _check_reference_image

    _check_reference_image(request, caps, PROVIDER)


@settings(max_examples=50, deadline=None)
@given(st.from_type(VideoRequest))
def test_from_type_gives_valid_requests_that_round_trip(request: VideoRequest) -> None:
    assert isinstance(request, VideoRequest)
    assert from_json(to_json(request), VideoRequest) == request


@settings(max_examples=50, deadline=None)
@given(st.from_type(VideoResult))
def test_from_type_gives_results_that_round_trip(result: VideoResult) -> None:
    assert from_json(to_json(result), VideoResult) == result


@settings(max_examples=20, deadline=None)
@given(st.from_type(Capabilities))
def test_from_type_gives_capabilities(caps: Capabilities) -> None:
    assert isinstance(caps, Capabilities)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF"])
def test_padded_images_stay_valid_images(fmt: str) -> None:
    from reelgen.images import read_image

    image = read_image(encode_image(32, 24, fmt, text_padding=200_000))
    assert (image.width, image.height, image.format) == (32, 24, fmt)
    assert len(image.content) > 200_000
