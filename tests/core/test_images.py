"""Reference images: read from every local form, inspected with Pillow, checked against limits."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import struct
import zlib
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from reelgen import Capabilities, ValidationError
from reelgen.images import ImageData, check_image, image_key, is_remote, read_image, to_data_uri


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels but holds none (what a decompression bomb looks like)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def refused(image: ImageData, *fragments: str, **capabilities: Any) -> str:
    with pytest.raises(ValidationError) as info:
        check_image(image, Capabilities(model="m", **capabilities), provider="acme")
    assert info.value.field == "reference_image"
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- reading ------------------------------------------------------------------------------------------


def test_every_local_form_reads_the_same_image(tmp_path: Path, png: bytes) -> None:
    path = tmp_path / "a dir %20 with spaces" / "cät #1?.png"
    path.parent.mkdir()
    path.write_bytes(png)
    data_uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    forms: list[str | bytes] = [
        png,
        str(path),
        path.as_uri(),
        data_uri,
        "DATA:image/png;BASE64," + data_uri.split(",")[1],
    ]
    images = [read_image(form) for form in forms]
    for image in images:
        assert (image.format, image.width, image.height, image.has_alpha) == ("PNG", 32, 24, False)
        assert image.content == png and image.sha256 == hashlib.sha256(png).hexdigest()
        assert image.mime == "image/png"
    assert [image.origin for image in images] == ["bytes", str(path), str(path), "data URI", "data URI"]
    assert "%20" in path.as_uri() and "%23" in path.as_uri()  # the URI really is percent-encoded


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, png: bytes) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "cat.png").write_bytes(png)
    assert read_image("~/cat.png").content == png


@pytest.mark.parametrize(
    "fmt, mime, save",
    [("PNG", "image/png", {}), ("JPEG", "image/jpeg", {"quality": 80}), ("WEBP", "image/webp", {}),
     ("BMP", "image/bmp", {}), ("GIF", "image/gif", {})],
)  # fmt: skip
def test_formats_are_recognized(make_image: Any, fmt: str, mime: str, save: dict[str, Any]) -> None:
    image = read_image(make_image(fmt, (40, 30), **save))
    assert (image.format, image.mime, image.width, image.height) == (fmt, mime, 40, 30)


@pytest.mark.parametrize(
    "mode, save, alpha",
    [
        ("RGB", {}, False), ("L", {}, False), ("RGBA", {}, True), ("LA", {}, True),
        ("P", {"transparency": 0}, True), ("RGB", {"transparency": (0, 0, 0)}, True), ("L", {"transparency": 0}, True),
    ],
)  # fmt: skip
def test_transparency_is_detected(mode: str, save: dict[str, Any], alpha: bool) -> None:
    buffer = io.BytesIO()
    Image.new(mode, (8, 8)).save(buffer, "PNG", **save)
    assert read_image(buffer.getvalue()).has_alpha is alpha


@given(st.binary(max_size=512))
def test_bytes_that_are_not_an_image_are_refused(content: bytes) -> None:
    try:
        image = read_image(content)
    except ValidationError as error:
        assert error.field == "reference_image"
        assert "not a readable image" in str(error) and "JPEG, PNG" in str(error)
    else:  # random bytes that happen to decode (vanishingly rare): still a real image
        assert image.width > 0 and image.height > 0


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
@given(data=st.data())
def test_damaged_images_are_refused_or_read_never_crash(make_image: Any, fmt: str, data: st.DataObject) -> None:
    original = bytearray(make_image(fmt, (16, 16)))
    damage = data.draw(st.sampled_from(["truncate", "flip", "splice"]))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    if damage == "truncate":
        content = bytes(original[: rng.randrange(len(original))])
    elif damage == "flip":
        for _ in range(rng.randint(1, 8)):
            original[rng.randrange(len(original))] = rng.randrange(256)
        content = bytes(original)
    else:
        at = rng.randrange(len(original))
        content = bytes(original[:at]) + rng.randbytes(rng.randint(1, 64)) + bytes(original[at:])
    try:
        read_image(content)
    except ValidationError as error:
        assert error.field == "reference_image"


def test_a_decompression_bomb_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        read_image(png_header_only(30000, 30000))
    assert info.value.field == "reference_image"
    assert "pixels" in str(info.value)


def test_text_file_is_refused_saying_what_to_give(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image at all")
    with pytest.raises(ValidationError, match=r"notes\.png.*not a readable image: give a JPEG, PNG, WEBP or BMP"):
        read_image(str(path))


@pytest.mark.parametrize("reference", ["/no/such/cat.png", "file:///no/such/cat.png", "relative/missing.png"])
def test_missing_files_are_refused(reference: str) -> None:
    with pytest.raises(ValidationError, match="does not exist") as info:
        read_image(reference)
    assert info.value.field == "reference_image"


def test_a_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a file"):
        read_image(str(tmp_path))


@pytest.mark.parametrize("uri", ["data:image/png,rawpixels", "data:image/png;base64,%%%notbase64"])
def test_bad_data_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValidationError, match="data URI") as info:
        read_image(uri)
    assert info.value.field == "reference_image"


@pytest.mark.parametrize("url", ["https://x.test/a.png", "HTTP://x.test/a.png", "oss://bucket/a.png"])
def test_remote_urls_are_not_read_here(url: str) -> None:
    assert is_remote(url)
    assert image_key(url) == "url:" + url
    with pytest.raises(ValueError, match="remote"):
        read_image(url)


@pytest.mark.parametrize("reference", [b"https://x.test/a.png", "file:///x.png", "data:image/png;base64,", "x.png"])
def test_local_references_are_not_remote(reference: str | bytes) -> None:
    assert not is_remote(reference)


def test_image_key_is_the_content_hash(tmp_path: Path, png: bytes) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(png)
    assert image_key(str(path)) == image_key(png) == "sha256:" + hashlib.sha256(png).hexdigest()


def test_data_uri_round_trip(png: bytes) -> None:
    image = read_image(png)
    assert read_image(to_data_uri(image)) == attrs.evolve(image, origin="data URI")
    assert to_data_uri(image).startswith("data:image/png;base64,")


# --- checking against capabilities ------------------------------------------------------------------


def test_an_image_within_every_limit_passes(make_image: Any) -> None:
    image = read_image(make_image("JPEG", (300, 200)))
    check_image(
        image,
        Capabilities(model="m", image_formats=("JPEG",), image_alpha=False, image_max_bytes=len(image.content),
                     image_side_range=(200, 300)),
        provider="acme",
    )  # fmt: skip


def test_format_not_accepted(make_image: Any) -> None:
    image = read_image(make_image("GIF", (20, 20)))
    refused(image, "GIF", "acme accepts JPEG, PNG, WEBP, BMP", "convert")  # the default formats
    refused(read_image(make_image("PNG")), "PNG", "accepts JPEG", "convert", image_formats=("JPEG",))


def test_alpha_not_accepted(make_image: Any) -> None:
    image = read_image(make_image("PNG", mode="RGBA"))
    refused(image, "alpha", "flatten", image_alpha=False)
    check_image(image, Capabilities(model="m", image_alpha=True), provider="acme")


@given(extra=st.integers(1, 10**7))
def test_size_cap_says_how_big_and_the_limit(png: bytes, extra: int) -> None:
    image = read_image(png)
    cap = max(1, len(png) - extra)
    message = refused(image, "compress or downscale", image_max_bytes=cap)
    assert f"{len(png)} bytes" in message and f"at most {cap} bytes" in message


def test_size_cap_in_megabytes_reads_well(png: bytes) -> None:
    image = ImageData(
        content=b"\0" * 10_500_000, format="PNG", width=1, height=1, has_alpha=False, sha256="", origin="x"
    )
    message = refused(image, "10.5 MB", "10 MB", image_max_bytes=10_000_000)
    assert "at most 0 MB" not in message


@pytest.mark.parametrize(
    "size, side", [((99, 400), "width is 99"), ((400, 99), "height is 99"), ((5000, 400), "width is 5000")]
)
def test_side_range(make_image: Any, size: tuple[int, int], side: str) -> None:
    image = read_image(make_image("PNG", size))
    refused(image, f"{size[0]}x{size[1]}", "between 100 and 4096", side, "resize", image_side_range=(100, 4096))


@given(width=st.integers(1, 64), height=st.integers(1, 64), low=st.integers(1, 64), span=st.integers(0, 64))
def test_side_range_is_inclusive(width: int, height: int, low: int, span: int) -> None:
    image = ImageData(content=b"x", format="PNG", width=width, height=height, has_alpha=False, sha256="", origin="x")
    high = low + span
    caps = Capabilities(model="m", image_side_range=(low, high))
    inside = low <= width <= high and low <= height <= high
    if inside:
        check_image(image, caps, provider="acme")
    else:
        with pytest.raises(ValidationError, match="resize"):
            check_image(image, caps, provider="acme")
