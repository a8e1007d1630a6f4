"""Each request check of the create route, against the reference's §3-§5.

Every error asserts status, `code`, `message` and that a `request_id` came back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from reelgen_bailian_wan.emulator import DashScopeEmulator

# These tests are about requests, not pixels: the cheap still render keeps them fast.
pytestmark = pytest.mark.dashscope_emulator(render_mode="still", run_seconds=0.0)

DOWNLOAD_TIMED_OUT = "Download the media resource timed out during the data inspection process."
FORMAT = "The media format is not supported or incorrect for the data inspection."


# -- headers ------------------------------------------------------------------------


def test_missing_bearer_is_401_no_api_key(api: Any, helpers: Any) -> None:
    response = api.create(headers=api.headers(key=None))
    helpers.assert_error(response, 401, "InvalidApiKey", "No API-key provided.")


def test_malformed_authorization_is_401_invalid_key(api: Any, helpers: Any) -> None:
    headers = api.headers(key=None, Authorization="Basic abc")
    helpers.assert_error(api.create(headers=headers), 401, "InvalidApiKey", "Invalid API-key provided.")
    headers = api.headers(key=None, Authorization="Bearer ")
    helpers.assert_error(api.create(headers=headers), 401, "InvalidApiKey")


@pytest.mark.dashscope_emulator(api_keys={"sk-good"})
def test_configured_keys_reject_others_on_every_route(api: Any, helpers: Any) -> None:
    helpers.assert_error(
        api.create(headers=api.headers(key="sk-bad")), 401, "InvalidApiKey", "Invalid API-key provided."
    )
    base = api.base
    bad = {"Authorization": "Bearer sk-bad"}
    for response in (
        requests.get(f"{base}/tasks/abc", headers=bad),
        requests.post(f"{base}/tasks/abc/cancel", headers=bad),
        requests.get(f"{base}/tasks", headers=bad),
        requests.get(f"{base}/uploads?action=getPolicy&model=m", headers=bad),
    ):
        helpers.assert_error(response, 401, "InvalidApiKey")
    assert api.create(headers=api.headers(key="sk-good")).status_code == 200


def test_missing_async_header_is_refused(api: Any, helpers: Any) -> None:
    headers = {"Authorization": f"Bearer {helpers.KEY}", "Content-Type": "application/json"}
    response = api.create(headers=headers)
    helpers.assert_error(response, 403, "AccessDenied", "current user api does not support synchronous calls")


def test_api_key_is_never_echoed(api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator) -> None:
    task_id = api.create_id()
    texts = [
        api.query(task_id).text,
        api.create(headers=api.headers(key=None)).text,
        requests.get(f"{api.base}/tasks", headers={"Authorization": f"Bearer {helpers.KEY}"}).text,
        json.dumps(dashscope_emulator.tasks()),
        json.dumps(dashscope_emulator.counters()),
    ]
    assert not any(helpers.KEY in text for text in texts)


def test_tolerates_charset_suffix_any_user_agent_and_sdk_extras(api: Any, helpers: Any) -> None:
    payload = helpers.body()
    payload["input"].update({"extend_prompt": True, "function": "video-synthesis"})
    headers = api.headers(**{"Content-Type": "application/json; charset=utf-8", "User-Agent": "curl/8 whatever"})
    response = api.session.post(api.base + helpers.CREATE_PATH, data=json.dumps(payload), headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    result = response.json()
    assert result["output"]["task_status"] == "PENDING"
    assert result["request_id"]


@pytest.mark.parametrize("parameters", [None, {}])
def test_missing_or_empty_parameters_take_the_defaults(
    api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator, parameters: Any
) -> None:
    payload: dict[str, Any] = {"model": helpers.MODEL, "input": {"img_url": helpers.IMAGE_URI}}
    if parameters is not None:
        payload["parameters"] = parameters
    result = api.wait(api.create_id(payload))
    # 1080P and 5 s by default, audio on: 320x240 at 1080P -> 1648x1232.
    assert result["usage"] == {
        "duration": 5,
        "input_video_duration": 0,
        "output_video_duration": 5,
        "video_count": 1,
        "SR": 1080,
        "audio": True,
    }
    assert dashscope_emulator.tasks()[0]["output_size"] == [1648, 1232]
    assert result["output"]["orig_prompt"] == ""


# -- body shape ---------------------------------------------------------------------


def test_body_that_is_not_json_is_invalid_parameter(api: Any, helpers: Any) -> None:
    response = api.session.post(api.base + helpers.CREATE_PATH, data=b"{not json", headers=api.headers())
    helpers.assert_error(response, 400, "InvalidParameter")


@pytest.mark.parametrize("model", [None, ""])
def test_missing_model(api: Any, helpers: Any, model: Any) -> None:
    payload = helpers.body()
    payload["model"] = model
    helpers.assert_error(
        api.create(payload), 400, "BadRequest.EmptyModel", 'Required parameter "model" missing from request.'
    )


@pytest.mark.parametrize("model", ["wan2.6-i2v", "wanx2.1-i2v-plus", "nope"])
def test_other_models_do_not_exist(api: Any, helpers: Any, model: str) -> None:
    payload = helpers.body()
    payload["model"] = model
    helpers.assert_error(api.create(payload), 404, "InvalidParameter", "Model not exist.")


def test_missing_input(api: Any, helpers: Any) -> None:
    payload = helpers.body()
    del payload["input"]
    helpers.assert_error(
        api.create(payload), 400, "BadRequest.EmptyInput", "Required input parameter missing from request."
    )


@pytest.mark.parametrize(
    "strict", [False, pytest.param(True, marks=pytest.mark.dashscope_emulator(strict_parameters=True))]
)
def test_missing_img_url_is_field_required(api: Any, helpers: Any, strict: bool) -> None:
    for source in ({"prompt": "x"}, {"prompt": "x", "img_url": ""}, {"media": [{"type": "first_frame", "url": "x"}]}):
        payload = helpers.body()
        payload["input"] = source
        helpers.assert_error(api.create(payload), 400, "InvalidParameter", "Field required: input.img_url")


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"resolution": "480P"}, "Input should be '720P' or '1080P': parameters.resolution"),
        ({"resolution": "720p"}, "Input should be '720P' or '1080P': parameters.resolution"),
        ({"duration": 1}, "Input should be an integer from 2 to 15: parameters.duration"),
        ({"duration": 16}, "Input should be an integer from 2 to 15: parameters.duration"),
        ({"duration": 5.5}, "Input should be an integer from 2 to 15: parameters.duration"),
        ({"duration": "5"}, "Input should be an integer from 2 to 15: parameters.duration"),
        ({"duration": True}, "Input should be an integer from 2 to 15: parameters.duration"),
        ({"seed": -1}, "Input should be an integer from 0 to 2147483647: parameters.seed"),
        ({"seed": 2147483648}, "Input should be an integer from 0 to 2147483647: parameters.seed"),
        ({"seed": "7"}, "Input should be an integer from 0 to 2147483647: parameters.seed"),
        ({"shot_type": "dolly"}, "Input should be 'single' or 'multi': parameters.shot_type"),
        (
            {"shot_type": "multi", "prompt_extend": False},
            "shot_type 'multi' requires prompt_extend to be true: parameters.shot_type",
        ),
        ({"audio": "false"}, "Input should be a valid boolean: parameters.audio"),
        ({"watermark": 1}, "Input should be a valid boolean: parameters.watermark"),
        ({"prompt_extend": None}, "Input should be a valid boolean: parameters.prompt_extend"),
    ],
)
def test_parameter_checks(api: Any, helpers: Any, parameters: dict[str, Any], message: str) -> None:
    helpers.assert_error(api.create(**parameters), 400, "InvalidParameter", message)


@pytest.mark.parametrize(
    "parameters",
    [
        {"duration": 2},
        {"duration": 15.0},
        {"seed": 0},
        {"seed": 2147483647},
        {"shot_type": "multi", "prompt_extend": True},
        {"shot_type": "single", "prompt_extend": False},
        {"audio": False, "watermark": True},
    ],
)
def test_parameter_values_at_the_edges_are_accepted(api: Any, parameters: dict[str, Any]) -> None:
    assert api.create(**parameters).status_code == 200


def test_prompts_are_silently_truncated_and_orig_prompt_echoes_the_truncated_one(
    api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator
) -> None:
    payload = helpers.body()
    payload["input"]["prompt"] = "p" * 1400 + "q" * 600
    payload["input"]["negative_prompt"] = "n" * 600
    result = api.wait(api.create_id(payload))
    received = dashscope_emulator.tasks()[0]["input"]
    assert received["prompt"] == "p" * 1400 + "q" * 100
    assert received["negative_prompt"] == "n" * 500
    assert result["output"]["orig_prompt"] == received["prompt"]
    assert "actual_prompt" not in result["output"]


def test_prompt_of_the_wrong_type(api: Any, helpers: Any) -> None:
    payload = helpers.body()
    payload["input"]["prompt"] = ["a", "b"]
    helpers.assert_error(api.create(payload), 400, "InvalidParameter", "Input should be a valid string: input.prompt")


def test_unknown_parameters_are_ignored_by_default(
    api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator
) -> None:
    response = api.create(fps=24, size="1280*720", motion_strength=0.5)
    assert response.status_code == 200, response.text
    task = dashscope_emulator.tasks()[0]
    assert task["parameters"]["fps"] == 24  # recorded as received
    assert task["ignored"] == ["parameters.fps", "parameters.motion_strength", "parameters.size"]


@pytest.mark.dashscope_emulator(strict_parameters=True)
@pytest.mark.parametrize("name", ["fps", "size", "motion_strength", "ratio"])
def test_strict_mode_rejects_unknown_parameters(api: Any, helpers: Any, name: str) -> None:
    response = api.create(**{name: 1})
    helpers.assert_error(response, 400, "InvalidParameter", f"Extra inputs are not permitted: parameters.{name}")


@pytest.mark.dashscope_emulator(strict_parameters=True)
def test_strict_mode_still_accepts_the_sdk_s_input_extras(api: Any, helpers: Any) -> None:
    payload = helpers.body()
    payload["input"].update({"extend_prompt": True, "function": "video-synthesis", "negative_prompt": "x"})
    assert api.create(payload).status_code == 200
    payload["input"]["color"] = "red"
    helpers.assert_error(api.create(payload), 400, "InvalidParameter", "Extra inputs are not permitted: input.color")


def test_unknown_service_path_is_url_error(api: Any, helpers: Any) -> None:
    response = api.session.post(
        api.base + "/services/aigc/image2video/video-synthesis", json=helpers.body(), headers=api.headers()
    )
    helpers.assert_error(response, 400, "InvalidParameter", "url error, please check url!")


# -- img_url forms and data inspection ----------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://help-static-aliyun-doc.aliyuncs.com/file-manage-files/zh-CN/20250925/wpimhv/rap.png",
        "http://example.com/cat.png",
        "http://10.0.0.1/cat.png",
    ],
)
def test_non_loopback_urls_fail_like_an_unreachable_url(api: Any, helpers: Any, url: str) -> None:
    payload = helpers.body()
    payload["input"]["img_url"] = url
    helpers.assert_error(api.create(payload), 400, "InvalidParameter.DataInspection", DOWNLOAD_TIMED_OUT)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/a.png", "img.png", "file:///tmp/a.png"])
def test_other_schemes_are_invalid_urls(api: Any, helpers: Any, url: str) -> None:
    payload = helpers.body()
    payload["input"]["img_url"] = url
    helpers.assert_error(api.create(payload), 400, "InvalidURL", "Invalid URL provided in your request.")


def test_loopback_urls_are_fetched(
    api: Any, helpers: Any, static_server: Any, dashscope_emulator: DashScopeEmulator
) -> None:
    base, folder = static_server
    (folder / "frame.png").write_bytes(helpers.IMAGE)
    for host in ("127.0.0.1", "localhost"):
        payload = helpers.body()
        payload["input"]["img_url"] = f"{base.replace('127.0.0.1', host)}/frame.png"
        assert api.create(payload).status_code == 200
    payload["input"]["img_url"] = f"{base}/missing.png"
    helpers.assert_error(
        api.create(payload),
        400,
        "InvalidParameter.DataInspection",
        "Failed to find the requested media resource during the data inspection process.",
    )


def test_a_closed_loopback_port_is_a_download_failure(api: Any, helpers: Any) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    payload = helpers.body()
    payload["input"]["img_url"] = f"http://127.0.0.1:{port}/a.png"
    helpers.assert_error(api.create(payload), 400, "InvalidParameter.DataInspection", DOWNLOAD_TIMED_OUT)


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,!!!notbase64",
        "data:image/png,rawdata",
        "data:text/plain;base64,aGVsbG8gd29ybGQ=",
    ],
)
def test_bad_data_uris_fail_data_inspection(api: Any, helpers: Any, url: str) -> None:
    payload = helpers.body()
    payload["input"]["img_url"] = url
    helpers.assert_error(api.create(payload), 400, "InvalidParameter.DataInspection", FORMAT)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "WEBP"])
def test_supported_image_formats(api: Any, helpers: Any, fmt: str) -> None:
    payload = helpers.body()
    payload["input"]["img_url"] = helpers.data_uri(helpers.image_bytes(fmt=fmt), f"image/{fmt.lower()}")
    assert api.create(payload).status_code == 200


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_unsupported_image_formats(api: Any, helpers: Any, fmt: str) -> None:
    payload = helpers.body()
    payload["input"]["img_url"] = helpers.data_uri(helpers.image_bytes(fmt=fmt), "image/png")
    helpers.assert_error(api.create(payload), 400, "InvalidParameter.DataInspection", FORMAT)


def _failed(api: Any, helpers: Any, image: bytes) -> dict[str, Any]:
    payload = helpers.body()
    payload["input"]["img_url"] = helpers.data_uri(image)
    response = api.create(payload)
    assert response.status_code == 200, response.text  # accepted, then FAILED
    result = api.wait(response.json()["output"]["task_id"])
    assert result["output"]["task_status"] == "FAILED"
    assert "usage" not in result
    return dict(result["output"])


@pytest.mark.parametrize("size", [(200, 400), (400, 239), (8001, 300)])
def test_image_sides_out_of_bounds_end_as_failed_task(api: Any, helpers: Any, size: tuple[int, int]) -> None:
    output = _failed(api, helpers, helpers.image_bytes(size, fmt="JPEG"))
    assert output["code"] == "InvalidParameter"
    assert output["message"].startswith("The size is not match")
    assert f"{size[0]}x{size[1]}" in output["message"]


@pytest.mark.dashscope_emulator(min_image_side=100, max_image_side=500)
def test_pixel_bounds_are_configurable(api: Any, helpers: Any) -> None:
    output = _failed(api, helpers, helpers.image_bytes((600, 300)))
    assert "[100, 500]" in output["message"]
    payload = helpers.body()
    payload["input"]["img_url"] = helpers.data_uri(helpers.image_bytes((200, 150)))
    assert api.create(payload).status_code == 200


def test_png_with_alpha_ends_as_failed_task(api: Any, helpers: Any) -> None:
    output = _failed(api, helpers, helpers.image_bytes(mode="RGBA"))
    assert output["code"] == "InvalidParameter"
    assert "alpha" in output["message"]


@pytest.mark.dashscope_emulator(reject_alpha=False)
def test_alpha_can_be_allowed(api: Any, helpers: Any) -> None:
    payload = helpers.body()
    payload["input"]["img_url"] = helpers.data_uri(helpers.image_bytes(mode="RGBA"))
    assert api.wait(api.create_id(payload))["output"]["task_status"] == "SUCCEEDED"


@pytest.mark.dashscope_emulator(max_image_bytes=2000)
def test_image_over_the_byte_limit_ends_as_failed_task(api: Any, helpers: Any) -> None:
    big = helpers.image_bytes((400, 400), fmt="BMP")
    assert len(big) > 2000
    output = _failed(api, helpers, big)
    assert output["message"] == "The image file size exceeds the limit of 0.00190735MB."


def test_audio_url_is_inspected_when_audio_is_on(api: Any, helpers: Any) -> None:
    import io
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 8000 * 3)
    payload = helpers.body()
    payload["input"]["audio_url"] = helpers.data_uri(buffer.getvalue(), "audio/wav")
    assert api.create(payload).status_code == 200
    payload["input"]["audio_url"] = helpers.data_uri(b"not audio at all", "audio/mpeg")
    helpers.assert_error(api.create(payload), 400, "InvalidParameter.DataInspection", FORMAT)
    # audio=false makes audio_url ignored.
    payload["parameters"]["audio"] = False
    assert api.create(payload).status_code == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_oversized_bodies_get_413(api: Any, helpers: Any, monkeypatch: pytest.MonkeyPatch, chunked: bool) -> None:
    from reelgen_bailian_wan.emulator import server

    monkeypatch.setattr(server, "MAX_BODY_BYTES", 1000)
    data = json.dumps(helpers.body()).encode()
    assert len(data) > 1000
    payload: Any = iter([data[:600], data[600:]]) if chunked else data
    response = api.session.post(api.base + helpers.CREATE_PATH, data=payload, headers=api.headers())
    helpers.assert_error(response, 413, "BadRequest.TooLarge", "Payload Too Large")


def test_chunked_bodies_are_read(api: Any, helpers: Any) -> None:
    data = json.dumps(helpers.body()).encode()
    response = api.session.post(
        api.base + helpers.CREATE_PATH, data=iter([data[:100], data[100:]]), headers=api.headers()
    )
    assert response.status_code == 200, response.text
