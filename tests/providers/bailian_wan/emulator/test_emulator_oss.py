"""Temporary uploads (getPolicy + the OSS form), `oss://` inputs, signed result URLs."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
import requests

from reelgen_bailian_wan.emulator import DashScopeEmulator

pytestmark = pytest.mark.dashscope_emulator(render_mode="still", run_seconds=0.0)

FORM_ORDER = [
    "OSSAccessKeyId",
    "Signature",
    "policy",
    "key",
    "x-oss-object-acl",
    "x-oss-forbid-overwrite",
    "success_action_status",
    "x-oss-content-type",
]


def get_policy(api: Any, model: str = "wan2.6-i2v-flash") -> dict[str, Any]:
    response = api.session.get(
        f"{api.base}/uploads", params={"action": "getPolicy", "model": model}, headers={"Authorization": "Bearer k"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    payload = response.json()
    assert set(payload) == {"data", "request_id"}
    return dict(payload["data"])


def upload(
    policy: dict[str, Any], data: bytes, name: str = "frame.png", *, drop: tuple[str, ...] = (), **override: str
) -> requests.Response:
    """The SDK's 9-field form (utils/oss_utils.py), with fields dropped or overridden."""
    form = {
        "OSSAccessKeyId": policy["oss_access_key_id"],
        "Signature": policy["signature"],
        "policy": policy["policy"],
        "key": f"{policy['upload_dir']}/{name}",
        "x-oss-object-acl": policy["x_oss_object_acl"],
        "x-oss-forbid-overwrite": policy["x_oss_forbid_overwrite"],
        "success_action_status": "200",
        "x-oss-content-type": "image/png",
    }
    form.update(override)
    for field in drop:
        form.pop(field)
    return requests.post(
        policy["upload_host"], data=form, files={"file": (name, data)}, headers={"Accept": "application/json"}
    )


def test_policy_has_the_captured_shape(api: Any, dashscope_emulator: DashScopeEmulator) -> None:
    policy = get_policy(api)
    assert set(policy) == {
        "policy",
        "signature",
        "upload_dir",
        "upload_host",
        "expire_in_seconds",
        "max_file_size_mb",
        "capacity_limit_mb",
        "oss_access_key_id",
        "x_oss_object_acl",
        "x_oss_forbid_overwrite",
    }
    assert policy["upload_host"].startswith(dashscope_emulator.origin)
    assert re.fullmatch(r"dashscope-instant/[0-9a-f]{32}/\d{4}-\d\d-\d\d/[0-9a-f-]{36}", policy["upload_dir"])
    assert (policy["expire_in_seconds"], policy["max_file_size_mb"]) == (300, 1024)
    assert (policy["x_oss_object_acl"], policy["x_oss_forbid_overwrite"]) == ("private", "true")
    document = json.loads(base64.b64decode(policy["policy"]))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", document["expiration"])
    assert document["conditions"] == [
        ["content-length-range", 0, 1073741824],
        ["starts-with", "$key", policy["upload_dir"]],
        {"bucket": "dashscope-file-mgr"},
        {"x-oss-object-acl": "private"},
        {"x-oss-forbid-overwrite": "true"},
    ]


@pytest.mark.parametrize("params", [{"action": "getPolicy"}, {"model": "m"}, {"action": "other", "model": "m"}])
def test_policy_needs_action_and_model(api: Any, helpers: Any, params: dict[str, str]) -> None:
    response = api.session.get(f"{api.base}/uploads", params=params, headers={"Authorization": "Bearer k"})
    helpers.assert_error(response, 400, "InvalidParameter")


def test_upload_then_oss_url_resolves_only_with_the_header(
    api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator
) -> None:
    policy = get_policy(api)
    response = upload(policy, helpers.IMAGE)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["ETag"].startswith('"')
    oss_url = f"oss://{policy['upload_dir']}/frame.png"
    payload = helpers.body()
    payload["input"]["img_url"] = oss_url
    helpers.assert_error(api.create(payload), 400, "InvalidURL", "Invalid URL provided in your request.")
    headers = api.headers(**{"X-DashScope-OssResourceResolve": "enable"})
    task_id = api.create(payload, headers=headers).json()["output"]["task_id"]
    assert api.wait(task_id)["output"]["task_status"] == "SUCCEEDED"
    assert dashscope_emulator.tasks()[0]["input"]["img_url"] == oss_url
    assert dashscope_emulator.counters()["uploads"] == 1


def test_unknown_oss_key_fails_data_inspection(api: Any, helpers: Any) -> None:
    payload = helpers.body()
    payload["input"]["img_url"] = "oss://dashscope-instant/nope/2025-01-01/x/frame.png"
    response = api.create(payload, headers=api.headers(**{"X-DashScope-OssResourceResolve": "enable"}))
    helpers.assert_error(
        response,
        400,
        "InvalidParameter.DataInspection",
        "Failed to find the requested media resource during the data inspection process.",
    )


@pytest.mark.parametrize("field", ["x-oss-object-acl", "x-oss-forbid-overwrite"])
def test_upload_without_the_x_oss_fields_is_403(api: Any, helpers: Any, field: str) -> None:
    response = upload(get_policy(api), helpers.IMAGE, drop=(field,))
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/xml"
    assert "<Code>AccessDenied</Code>" in response.text
    expected = "private" if field == "x-oss-object-acl" else "true"
    assert f'Policy Condition failed: ["eq", "${field}", "{expected}"]' in response.text


def test_upload_checks_signature_key_prefix_expiry_and_overwrite(
    api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator
) -> None:
    policy = get_policy(api)
    assert "<Code>SignatureDoesNotMatch</Code>" in upload(policy, helpers.IMAGE, Signature="AAAA").text
    assert "<Code>InvalidAccessKeyId</Code>" in upload(policy, helpers.IMAGE, OSSAccessKeyId="LTAIother").text
    outside = upload(policy, helpers.IMAGE, key="elsewhere/frame.png")
    assert outside.status_code == 403 and "starts-with" in outside.text
    assert upload(policy, helpers.IMAGE).status_code == 200
    again = upload(policy, helpers.IMAGE)
    assert again.status_code == 409 and "<Code>FileAlreadyExists</Code>" in again.text
    assert upload(policy, helpers.IMAGE, name="other.png", success_action_status="204").status_code == 204
    dashscope_emulator.advance(301)
    expired = upload(policy, helpers.IMAGE, name="late.png")
    assert expired.status_code == 403 and "Policy expired" in expired.text


def test_form_without_file_is_malformed(api: Any) -> None:
    policy = get_policy(api)
    response = requests.post(policy["upload_host"], data={"key": "x"}, files={"other": ("a", b"b")})
    assert response.status_code == 400 and "MalformedPOSTRequest" in response.text


def test_uploads_are_bound_to_the_model_and_expire(
    api: Any, helpers: Any, dashscope_emulator: DashScopeEmulator
) -> None:
    resolve = api.headers(**{"X-DashScope-OssResourceResolve": "enable"})
    other = get_policy(api, model="qwen-vl-max")
    assert upload(other, helpers.IMAGE).status_code == 200
    payload = helpers.body()
    payload["input"]["img_url"] = f"oss://{other['upload_dir']}/frame.png"
    helpers.assert_error(api.create(payload, headers=resolve), 400, "InvalidParameter.DataInspection")

    mine = get_policy(api)
    assert upload(mine, helpers.IMAGE).status_code == 200
    payload["input"]["img_url"] = f"oss://{mine['upload_dir']}/frame.png"
    assert api.create(payload, headers=resolve).status_code == 200
    dashscope_emulator.advance(48 * 3600 + 1)
    helpers.assert_error(api.create(payload, headers=resolve), 400, "InvalidParameter.DataInspection")


# -- signed result URLs --------------------------------------------------------------------


def _video_url(api: Any) -> str:
    return str(api.wait(api.create_id())["output"]["video_url"])


def test_result_url_range_and_head(api: Any) -> None:
    url = _video_url(api)
    whole = requests.get(url)
    assert whole.status_code == 200 and whole.headers["Accept-Ranges"] == "bytes"
    part = requests.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == whole.content[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(whole.content)}"
    tail = requests.get(url, headers={"Range": "bytes=-5"})
    assert tail.content == whole.content[-5:]
    assert requests.get(url, headers={"Range": f"bytes={len(whole.content)}-"}).status_code == 416
    head = requests.head(url)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(whole.content)


def test_result_url_signature_is_checked(api: Any) -> None:
    url = _video_url(api)
    tampered = re.sub(r"Signature=[^&]+", "Signature=AAAA", url)
    response = requests.get(tampered)
    assert response.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in response.text
    later = re.sub(r"Expires=(\d+)", lambda m: f"Expires={int(m.group(1)) + 999}", url)
    assert requests.get(later).status_code == 403
    bare = url.split("?")[0]
    response = requests.get(bare)
    assert response.status_code == 403 and "<Code>AccessDenied</Code>" in response.text
    missing = requests.get(url.replace(".mp4?", "x.mp4?"))
    assert missing.status_code == 403  # the signature covers the key


def test_result_urls_vanish_after_reset(api: Any, dashscope_emulator: DashScopeEmulator) -> None:
    url = _video_url(api)
    dashscope_emulator.reset()
    response = requests.get(url)
    assert response.status_code == 404 and "<Code>NoSuchKey</Code>" in response.text
