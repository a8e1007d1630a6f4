"""Every mapping rule: what is refused locally, what becomes a warning, and what goes on the wire.

The offline half runs the core's `check_request` and then the provider's `validate`, as the
pipeline does. The wire half reads what the emulator received through the real SDK.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from reelgen.errors import ValidationError
from reelgen.validation import check_request
from reelgen_bailian_wan import CAPABILITIES, create_provider
from reelgen_bailian_wan.mapping import build_call, nearest_tier
from tests.helpers.server import file_server
from tests.providers.bailian_wan.helpers import drive, jpeg, provider_for, request, task

OFFLINE = create_provider({})


def warnings_for(req, provider=OFFLINE) -> list[str]:
    return check_request(req, provider.capabilities, provider=provider.name) + provider.validate(req)


def png_bytes(size=(320, 240), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (10, 20, 30, 128) if mode == "RGBA" else (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


# -- size -> resolution ------------------------------------------------------------------


@given(st.integers(16, 8000), st.integers(16, 8000))
def test_the_tier_is_the_nearest_in_pixel_count_on_a_log_scale(width: int, height: int) -> None:
    chosen = nearest_tier(width, height)
    distances = {t.name: abs(math.log(width * height / t.pixels)) for t in CAPABILITIES.resolution_tiers}
    assert distances[chosen.name] == min(distances.values())


@pytest.mark.parametrize(
    ("size", "tier", "warns"),
    [
        ("1280*720", "720P", False),
        ("720*1280", "720P", False),
        ("1920*1080", "1080P", False),
        ("1080x1920", "1080P", False),
        ("640*360", "720P", True),
        ("1024*1024", "720P", True),
        ("1440*1080", "1080P", True),
        ("3840*2160", "1080P", True),
    ],
)
def test_size_maps_to_a_tier_and_warns_when_the_pixels_differ(size, tier, warns, wide_photo: Path) -> None:
    req = request(wide_photo, size=size)
    from reelgen_bailian_wan.mapping import resolve_tier

    chosen, tier_warnings = resolve_tier(req)
    assert chosen.name == tier
    assert bool(tier_warnings) is warns
    if warns:
        assert f"using {tier}" in tier_warnings[0] and size.replace("x", "*") in tier_warnings[0]


def test_the_resolution_option_overrides_size_with_a_warning(wide_photo: Path) -> None:
    same = request(wide_photo, options={"bailian_wan": {"resolution": "720P"}})
    assert not [w for w in warnings_for(same) if "resolution" in w]
    other = request(wide_photo, options={"bailian_wan": {"resolution": "1080P"}})
    (warning,) = [w for w in warnings_for(other) if "resolution=1080P" in w]
    assert "overrides" in warning and "720P" in warning


def test_an_image_with_another_aspect_ratio_warns_with_the_expected_size(photo: Path, wide_photo: Path) -> None:
    assert warnings_for(request(wide_photo)) == []
    (warning,) = warnings_for(request(photo))
    assert "4:3" in warning and "16:9" in warning and "expect about 1104*816 at 720P" in warning


def test_a_url_image_warns_that_its_aspect_ratio_cannot_be_checked() -> None:
    (warning,) = warnings_for(request("https://example.com/cat.jpg"))
    assert "aspect ratio follows the reference image" in warning and "16:9" in warning


# -- fields the core checks, with this provider's capabilities ---------------------------


@pytest.mark.parametrize("duration", [1, 1.5, 2.5, 16, 30])
def test_durations_outside_whole_2_to_15_seconds_are_refused_naming_the_range(duration, wide_photo: Path) -> None:
    with pytest.raises(ValidationError, match=r"from 2 to 15") as caught:
        warnings_for(request(wide_photo, duration=duration))
    assert caught.value.field == "duration"


@pytest.mark.parametrize("duration", [2, 5, 15, 7.0])
def test_whole_durations_in_range_pass(duration, wide_photo: Path) -> None:
    assert warnings_for(request(wide_photo, duration=duration)) == []


def test_fps_other_than_30_and_motion_strength_are_warnings(wide_photo: Path) -> None:
    found = warnings_for(request(wide_photo, fps=24, motion_strength=0.4))
    assert any("30 fps" in w and "24" in w for w in found)
    assert any("motion_strength" in w and "not sent" in w for w in found)


def test_long_prompts_warn_that_the_service_truncates(wide_photo: Path) -> None:
    found = warnings_for(request(wide_photo, prompt="x" * 1501, negative_prompt="n" * 501))
    assert any("prompt is 1501 characters" in w and "1500" in w for w in found)
    assert any("negative_prompt is 501 characters" in w and "500" in w for w in found)
    assert warnings_for(request(wide_photo, prompt="x" * 1500, negative_prompt="n" * 500)) == []


@pytest.mark.parametrize("seed", [-1, 2_147_483_648])
def test_seeds_outside_the_api_range_are_refused(seed, wide_photo: Path) -> None:
    if seed < 0:
        with pytest.raises(ValidationError):
            request(wide_photo, seed=seed)
        return
    with pytest.raises(ValidationError, match="2147483647"):
        warnings_for(request(wide_photo, seed=seed))


def test_a_reference_image_is_required() -> None:
    with pytest.raises(ValidationError, match="image-to-video"):
        warnings_for(request(None))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (png_bytes(mode="RGBA"), "alpha channel"),
        (png_bytes(size=(200, 200)), "between 240 and 8000"),
        (b"GIF89a" + b"\x00" * 64, "not a readable image"),
        (b"\xff\xd8" + b"\x00" * 11_000_000, "not a readable image|MB"),
    ],
)
def test_local_images_are_checked_with_a_message_that_says_what_to_fix(content: bytes, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        warnings_for(request(content, size="1280*720"))


def test_gif_is_refused_by_format() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (480, 270)).save(buffer, "GIF")
    with pytest.raises(ValidationError, match="GIF; bailian_wan accepts JPEG, PNG, BMP, WEBP"):
        warnings_for(request(buffer.getvalue()))


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP", "JPEG"])
def test_every_documented_format_passes(fmt: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (480, 270), (1, 2, 3)).save(buffer, fmt)
    assert warnings_for(request(buffer.getvalue())) == []


def test_oss_urls_pass_through(wide_photo: Path) -> None:
    assert any("aspect" in w for w in warnings_for(request("oss://dashscope-instant/x/cat.jpg")))


# -- options -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fps": 24}, "unknown option bailian_wan.fps"),
        ({"audio": "no"}, "must be bool"),
        ({"resolution": "480P"}, "must be one of 720P, 1080P"),
        ({"shot_type": "multi", "prompt_extend": False}, "needs bailian_wan.prompt_extend=true"),
        ({"upload": "s3"}, "must be one of inline, oss"),
        ({"audio_url": "/no/such/file.mp3"}, "local file"),
        ({"audio_url": "data:audio/mp3;base64,AAAA"}, "http"),
        ({"audio_url": "https://x/a.ogg"}, "wav or mp3"),
        ({"audio_url": ""}, "empty"),
    ],
)
def test_options_are_validated(options, message, wide_photo: Path) -> None:
    with pytest.raises(ValidationError, match=message):
        warnings_for(request(wide_photo, options={"bailian_wan": options}))


def test_audio_url_with_audio_false_warns_that_it_is_ignored(wide_photo: Path) -> None:
    req = request(wide_photo, options={"bailian_wan": {"audio": False, "audio_url": "https://x/a.mp3"}})
    (warning,) = warnings_for(req)
    assert "audio=false" in warning
    assert "audio_url" not in build_call(req, seed=1, image="data:", tier="720P")


def test_a_local_audio_file_needs_upload_oss(tmp_path: Path, wide_photo: Path) -> None:
    song = tmp_path / "song.mp3"
    song.write_bytes(b"ID3" + b"\x00" * 100)
    with pytest.raises(ValidationError, match="upload='oss'"):
        warnings_for(request(wide_photo, options={"bailian_wan": {"audio_url": str(song)}}))
    assert warnings_for(request(wide_photo, options={"bailian_wan": {"audio_url": str(song), "upload": "oss"}})) == []
    big = tmp_path / "big.wav"
    big.write_bytes(b"\x00" * 15_000_001)
    with pytest.raises(ValidationError, match="at most 15 MB"):
        warnings_for(request(wide_photo, options={"bailian_wan": {"audio_url": str(big), "upload": "oss"}}))


def test_upload_oss_is_beijing_only(wide_photo: Path) -> None:
    singapore = create_provider({"region": "singapore"})
    with pytest.raises(ValidationError, match="Beijing-only"):
        warnings_for(request(wide_photo, options={"bailian_wan": {"upload": "oss"}}), singapore)
    assert warnings_for(request(wide_photo, options={"bailian_wan": {"upload": "oss"}})) == []


def test_regions_without_the_flash_model_are_refused_unless_the_endpoint_is_explicit(wide_photo: Path) -> None:
    with pytest.raises(ValidationError, match="only offered in cn-beijing and ap-southeast-1"):
        warnings_for(request(wide_photo), create_provider({"region": "us-east-1"}))
    explicit = create_provider({"region": "us-east-1", "base_url": "https://proxy.example/api/v1"})
    assert warnings_for(request(wide_photo), explicit) == []


def test_build_call_sends_only_known_keywords(wide_photo: Path) -> None:
    req = request(
        wide_photo,
        fps=24,
        motion_strength=0.5,
        negative_prompt="blurry",
        options={"bailian_wan": {"prompt_extend": False, "watermark": True, "audio": False}},
    )
    call = build_call(req, seed=7, image="data:image/jpeg;base64,AA", tier="720P")
    assert call == {
        "model": "wan2.6-i2v-flash",
        "prompt": "waves against a lighthouse",
        "img_url": "data:image/jpeg;base64,AA",
        "extend_prompt": False,
        "prompt_extend": False,
        "duration": 2,
        "resolution": "720P",
        "seed": 7,
        "watermark": True,
        "audio": False,
        "negative_prompt": "blurry",
    }


# -- on the wire, through the real SDK -------------------------------------------------------

pytestmark = pytest.mark.dashscope_emulator(render_mode="still")


async def test_the_wire_carries_the_mapping_and_nothing_unknown(dashscope_emulator, photo: Path) -> None:
    provider = provider_for(dashscope_emulator)
    req = request(
        photo,
        size="640*360",
        fps=24,
        motion_strength=0.5,
        negative_prompt="blurry",
        options={"bailian_wan": {"prompt_extend": False, "watermark": True, "audio": False}},
    )
    job = await provider.submit(req)
    seen = task(dashscope_emulator, job.task_id)
    assert seen["parameters"] == {
        "resolution": "720P",
        "duration": 2,
        "seed": job.seed,
        "prompt_extend": False,
        "watermark": True,
        "audio": False,
    }
    assert seen["ignored"] == []
    assert seen["input"]["extend_prompt"] is False
    assert seen["input"]["negative_prompt"] == "blurry"
    assert seen["input"]["img_url"] == "data:image/jpeg;base64," + base64.b64encode(photo.read_bytes()).decode()
    for name in ("fps", "size", "motion_strength"):
        assert name not in seen["parameters"] and name not in seen["input"]
    status, _ = await drive(provider, job)
    assert status.state == "succeeded"


async def test_a_missing_seed_is_picked_sent_and_reported(dashscope_emulator, wide_photo: Path) -> None:
    provider = provider_for(dashscope_emulator)
    job = await provider.submit(request(wide_photo))
    assert job.seed is not None and 0 <= job.seed <= 2_147_483_647
    assert task(dashscope_emulator, job.task_id)["parameters"]["seed"] == job.seed
    status, _ = await drive(provider, job)
    assert status.output is not None and status.output.seed == job.seed
    chosen = await provider.submit(request(wide_photo, seed=42))
    assert chosen.seed == 42 and task(dashscope_emulator, chosen.task_id)["parameters"]["seed"] == 42


async def test_the_result_carries_usage_expiry_and_the_source_url(dashscope_emulator, wide_photo: Path) -> None:
    provider = provider_for(dashscope_emulator)
    job = await provider.submit(request(wide_photo, duration=3))
    status, _ = await drive(provider, job)
    output = status.output
    assert output is not None
    seen = task(dashscope_emulator, job.task_id)
    assert output.source_url == seen["video_url"]
    assert output.usage == {
        "duration": 3.0,
        "input_video_duration": 0.0,
        "output_video_duration": 3.0,
        "video_count": 1,
        "SR": 720,
        "audio": True,
        "resolution": "720P",
    }
    from datetime import datetime

    expires = datetime.fromisoformat(output.expires_at.replace("Z", "+00:00"))
    assert abs(expires.timestamp() - seen["url_expires_at"]) < 1


@pytest.mark.parametrize("form", ["bytes", "file_uri", "data_uri"])
async def test_local_images_in_every_form_travel_as_data_uris(dashscope_emulator, photo: Path, form: str) -> None:
    content = photo.read_bytes()
    reference = {
        "bytes": content,
        "file_uri": photo.as_uri(),
        "data_uri": "data:image/jpeg;base64," + base64.b64encode(content).decode(),
    }[form]
    provider = provider_for(dashscope_emulator)
    job = await provider.submit(request(reference))
    assert task(dashscope_emulator, job.task_id)["input"]["img_url"].startswith("data:image/jpeg;base64,")


async def test_urls_pass_through_and_audio_urls_and_shot_type_go_out(dashscope_emulator, wide_photo: Path) -> None:
    import wave

    sound = io.BytesIO()
    with wave.open(sound, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000 * 4)
    with file_server() as server:
        image_url = server.add("/wide.jpg", wide_photo.read_bytes(), content_type="image/jpeg")
        audio_url = server.add("/song.wav", sound.getvalue(), content_type="audio/wav")
        provider = provider_for(dashscope_emulator)
        req = request(image_url, options={"bailian_wan": {"audio_url": audio_url, "shot_type": "multi"}})
        job = await provider.submit(req)
    seen = task(dashscope_emulator, job.task_id)
    assert seen["input"]["img_url"] == image_url
    assert seen["input"]["audio_url"] == audio_url
    assert seen["parameters"]["shot_type"] == "multi"


async def test_upload_oss_uses_the_sdk_upload(dashscope_emulator, photo: Path) -> None:
    provider = provider_for(dashscope_emulator)
    for reference in (str(photo), photo.read_bytes()):
        job = await provider.submit(request(reference, options={"bailian_wan": {"upload": "oss"}}))
        assert task(dashscope_emulator, job.task_id)["input"]["img_url"].startswith("oss://")
    counters = dashscope_emulator.counters()
    assert counters["uploads"] == 2 and counters["policies"] == 2


def test_jpeg_helper_is_a_real_jpeg() -> None:
    assert Image.open(io.BytesIO(jpeg())).format == "JPEG"


def test_the_expected_size_reproduces_the_documented_example() -> None:
    from reelgen_bailian_wan.mapping import expected_size

    (tier,) = [t for t in CAPABILITIES.resolution_tiers if t.name == "720P"]
    assert expected_size(tier, 750 / 1000) == (816, 1104)
    assert expected_size(tier, 16 / 9) == (1280, 720)


_SDK_KEYWORDS = {
    "model",
    "prompt",
    "img_url",
    "extend_prompt",
    "prompt_extend",
    "duration",
    "resolution",
    "seed",
    "watermark",
    "audio",
    "negative_prompt",
    "shot_type",
    "audio_url",
}


@given(
    fps=st.floats(1, 120),
    motion=st.none() | st.floats(0, 1),
    size=st.tuples(st.integers(16, 4000), st.integers(16, 4000)),
    options=st.fixed_dictionaries(
        {},
        optional={
            "resolution": st.sampled_from(["720P", "1080P"]),
            "audio": st.booleans(),
            "audio_url": st.just("https://x/a.mp3"),
            "prompt_extend": st.just(True),
            "shot_type": st.sampled_from(["single", "multi"]),
            "watermark": st.booleans(),
            "upload": st.sampled_from(["inline", "oss"]),
        },
    ),
    duration=st.integers(2, 15),
    seed=st.integers(0, 2_147_483_647),
)
def test_nothing_outside_the_closed_keyword_list_is_ever_sent(fps, motion, size, options, duration, seed) -> None:
    req = request(
        "https://x/cat.jpg",
        fps=fps,
        motion_strength=motion,
        size=f"{size[0]}*{size[1]}",
        duration=duration,
        options={"bailian_wan": options},
    )
    from reelgen_bailian_wan.mapping import resolve_tier

    tier, _ = resolve_tier(req)
    call = build_call(req, seed=seed, image="https://x/cat.jpg", tier=tier.name)
    assert set(call) <= _SDK_KEYWORDS
    assert call["duration"] == duration and call["seed"] == seed and call["model"] == "wan2.6-i2v-flash"
    assert call["resolution"] == options.get("resolution", nearest_tier(*size).name)
    assert call["extend_prompt"] is call["prompt_extend"]


async def test_a_local_audio_file_is_uploaded_with_upload_oss(dashscope_emulator, wide_photo: Path, tmp_path) -> None:
    import wave

    song = tmp_path / "song.wav"
    with wave.open(str(song), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000 * 4)
    provider = provider_for(dashscope_emulator)
    req = request(wide_photo, options={"bailian_wan": {"audio_url": str(song), "upload": "oss"}})
    assert provider.validate(req) == []
    job = await provider.submit(req)
    seen = task(dashscope_emulator, job.task_id)
    assert seen["input"]["audio_url"].startswith("oss://") and seen["input"]["img_url"].startswith("oss://")
