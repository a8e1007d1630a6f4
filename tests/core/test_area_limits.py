"""The frame and picture area limits (`max_frame_pixels`, `image_max_pixels`).

Requests over them are refused offline with the fix in the message, and a reference file
too large for the provider is refused from its size and header, never read whole first.
"""

from __future__ import annotations

import io
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reelgen import Capabilities, ValidationError, VideoRequest
from reelgen.images import read_image, resolve_image
from reelgen.validation import check_request

P = "acme"
#: Files the `open` audit hook saw, while a test is watching.
_OPENED: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, Path)):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)  # an audit hook cannot be removed: it records only while a test watches


@pytest.fixture
def opened() -> Iterator[list[str]]:
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def one_bit_png(width: int, height: int, trailing: int = 0) -> bytes:
    """A real PNG of `width` x `height`, small to make at any size; `trailing` bytes after its end."""
    buffer = io.BytesIO()
    Image.new("1", (width, height), 1).save(buffer, format="PNG")
    return buffer.getvalue() + b"\0" * trailing


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"max_frame_pixels": 0}, "max_frame_pixels must be a whole number greater than 0"),
        ({"image_max_pixels": 2.5}, "image_max_pixels must be a whole number"),
        ({"max_frame_pixels": 100, "side_range": (16, 64)}, "below the smallest size side_range allows"),
        ({"max_frame_pixels": 255, "size_multiple_of": 16}, "below the smallest size side_range allows"),
        ({"max_frame_pixels": 1280 * 720, "sizes": ("1280*720", "1920*1080")}, "sizes lists 1920*1080"),
        ({"max_frame_pixels": 640 * 480, "default_size": "1280*720"}, "default_size '1280*720' is over"),
        ({"image_max_pixels": 1000, "image_side_range": (240, 4000)}, "image_max_pixels 1000 is below"),
    ],
)
def test_area_limits_that_contradict_the_other_fields_are_refused(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=r"capabilities of 'm'|must be") as info:
        Capabilities(model="m", **fields)
    assert fragment in str(info.value)


def test_a_frame_over_the_area_is_refused_with_a_size_that_fits() -> None:
    caps = Capabilities(model="m", side_range=(16, 4096), size_multiple_of=2, max_frame_pixels=3840 * 2160)
    request = VideoRequest(prompt="a cat", size="4096*4096")
    with pytest.raises(ValidationError) as info:
        check_request(request, caps, provider=P)
    assert info.value.field == "size"
    message = str(info.value)
    assert "size 4096*4096 is 16.8 MP; acme renders at most 8.29 MP (8294400 pixels): choose a smaller size" in message
    suggested = message.split("(e.g. ")[1].split(" ")[0]
    width, height = map(int, suggested.split("*"))
    assert width * height <= 3840 * 2160 and width == height and width % 2 == 0
    check_request(VideoRequest(prompt="a cat", size=suggested), caps, provider=P)
    check_request(VideoRequest(prompt="a cat", size="3840*2160"), caps, provider=P)
    check_request(VideoRequest(prompt="a cat", size="2160*3840"), caps, provider=P)


def test_a_picture_over_the_area_is_refused_in_any_form(tmp_path: Path) -> None:
    caps = Capabilities(model="m", image_max_pixels=4096 * 4096)
    picture = one_bit_png(16384, 1025)
    path = tmp_path / "wide.png"
    path.write_bytes(picture)
    for reference in (picture, str(path)):
        with pytest.raises(ValidationError) as info:
            check_request(VideoRequest(prompt="a cat", reference_image=reference), caps, provider=P)
        assert info.value.field == "reference_image"
        assert "is 16384x1025, 16.8 MP; acme takes pictures of at most 16.8 MP (16777216 pixels): downscale it" in str(
            info.value
        )
    check_request(VideoRequest(prompt="a cat", reference_image=one_bit_png(16384, 1024)), caps, provider=P)


def test_a_file_over_image_max_bytes_is_refused_without_being_opened(tmp_path: Path, opened: list[str]) -> None:
    path = tmp_path / "heavy.png"
    path.write_bytes(one_bit_png(64, 64, trailing=3_000_000))
    caps = Capabilities(model="m", image_max_bytes=1_000_000)
    opened.clear()  # writing it above was an open too
    with pytest.raises(ValidationError, match=r"heavy\.png.*bytes .*accepts at most 1000000 bytes") as info:
        check_request(VideoRequest(prompt="a cat", reference_image=str(path)), caps, provider=P)
    assert info.value.field == "reference_image"
    assert str(path) not in opened  # before: read whole (3 MB), then refused
    with pytest.raises(ValidationError, match="accepts at most 1000000 bytes"):
        resolve_image(str(path), caps, provider=P)  # the pipeline's gate reads the image this way
    assert str(path) not in opened


def test_a_file_over_image_max_pixels_is_refused_from_its_header(tmp_path: Path) -> None:
    # 30 MB behind the picture's end: reading the file whole would allocate all of it.
    path = tmp_path / "large.png"
    path.write_bytes(one_bit_png(8192, 4096, trailing=30_000_000))
    caps = Capabilities(model="m", image_max_pixels=4096 * 4096)
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError, match=r"takes pictures of at most 16\.8 MP"):
            resolve_image(str(path), caps, provider=P)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, f"{peak} bytes allocated to refuse a 30 MB file from its header"
    assert read_image(str(path)).width == 8192  # without capabilities it is read (and checked later)


def test_the_preview_refuses_what_its_renderer_cannot_bound(tmp_path: Path) -> None:
    import reelgen

    with pytest.raises(ValidationError, match=r"preview renders at most 8\.29 MP") as info:
        reelgen.validate(VideoRequest(prompt="a cat", size="4096*4096"), "preview")
    assert info.value.field == "size"
    path = tmp_path / "huge.png"
    path.write_bytes(one_bit_png(8192, 8192))
    with pytest.raises(ValidationError, match=r"preview takes pictures of at most 16\.8 MP") as info:
        reelgen.validate(VideoRequest(prompt="a cat", size="3840*2160", reference_image=str(path)), "preview")
    assert info.value.field == "reference_image"
    assert reelgen.validate(VideoRequest(prompt="a cat", size="3840*2160"), "preview") == []
