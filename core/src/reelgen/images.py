"""The reference image: where it lives, what it holds, and whether a provider can take it.

A `reference_image` is a remote URL (the provider fetches it), or something we can read
here: a local path, a `file://` URI, a `data:` URI, or raw bytes. Local images are read
once, hashed, and checked against the provider's limits with messages that say what to fix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from pathlib import Path
from typing import BinaryIO

import attrs

from .capabilities import Capabilities
from .errors import ValidationError
from .uris import file_url_to_path, is_file_url

__all__ = ["ImageData", "check_image", "image_key", "is_remote", "read_image", "resolve_image", "to_data_uri"]

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp", "GIF": "image/gif"}
#: Refuse to read more than this from a local reference image, whatever the provider says.
_READ_LIMIT = 64 * 1024 * 1024


@attrs.frozen(kw_only=True)
class ImageData:
    """A reference image read into memory and inspected with Pillow."""

    content: bytes = attrs.field(repr=False)
    format: str
    width: int
    height: int
    has_alpha: bool
    sha256: str
    #: Where it came from, for messages: a path, "bytes" or "data URI".
    origin: str

    @property
    def mime(self) -> str:
        return _MIME.get(self.format, "application/octet-stream")


def is_remote(reference: str | bytes) -> bool:
    """True for URLs the provider fetches itself (http, https, oss)."""
    return isinstance(reference, str) and reference.lower().startswith(("http://", "https://", "oss://"))


def _local_path(reference: str) -> Path:
    if is_file_url(reference):
        return file_url_to_path(reference)
    return Path(reference).expanduser()


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.3g} MP"


def _check_area(where: str, width: int, height: int, capabilities: Capabilities, provider: str) -> None:
    limit = capabilities.image_max_pixels
    if limit is not None and width * height > limit:
        raise ValidationError(
            f"{where} is {width}x{height}, {_megapixels(width * height)}; {provider} takes pictures of at most "
            f"{_megapixels(limit)} ({limit} pixels): downscale it",
            field="reference_image",
        )


def _check_size_before_opening(path: Path, capabilities: Capabilities, provider: str) -> None:
    """Refuse a file over `image_max_bytes` from `stat` alone: it is never opened."""
    size = path.stat().st_size
    limit = capabilities.image_max_bytes
    if limit is not None and size > limit:
        raise ValidationError(
            f"reference_image ({path}) is {size} bytes ({size / 1e6:.3g} MB); {provider} accepts at most "
            f"{limit} bytes ({limit / 1e6:.3g} MB): compress or downscale it",
            field="reference_image",
        )


def _check_header_before_reading(path: Path, file: BinaryIO, capabilities: Capabilities, provider: str) -> None:
    """Refuse a picture over `image_max_pixels` from its header, before it is read whole.

    Pillow's lazy `open` reads only the header for the dimensions. `file` is the one open
    handle the bytes are then read from, so the image is opened once per generation.
    """
    if capabilities.image_max_pixels is None:
        return
    from PIL import Image

    try:
        # Lazy: the header only, nothing decoded; Pillow leaves a handle it did not open open.
        width, height = Image.open(file).size
    except Exception:  # noqa: BLE001 - unreadable ones are refused, with their message, by read_image
        return
    finally:
        file.seek(0)
    _check_area(f"reference_image ({path})", width, height, capabilities, provider)


def _read_bytes(
    reference: str | bytes, capabilities: Capabilities | None = None, provider: str = ""
) -> tuple[bytes, str]:
    if isinstance(reference, bytes):
        return reference, "bytes"
    if reference.lower().startswith("data:"):
        header, _, payload = reference.partition(",")
        if ";base64" not in header.lower():
            raise ValidationError(
                "reference_image data URI must be base64 encoded (data:image/png;base64,...)", field="reference_image"
            )
        try:
            return base64.b64decode(payload, validate=True), "data URI"
        except (binascii.Error, ValueError) as exc:
            raise ValidationError(
                f"reference_image data URI is not valid base64 ({exc})", field="reference_image"
            ) from exc
    path = _local_path(reference)
    if not path.is_file():
        raise ValidationError(
            f"reference_image {str(path)!r} does not exist or is not a file: check the path "
            "(URLs must start with https://, http:// or oss://)",
            field="reference_image",
        )
    size = path.stat().st_size
    if size > _READ_LIMIT:
        raise ValidationError(
            f"reference_image {str(path)!r} is {size} bytes; reelgen reads at most {_READ_LIMIT} bytes",
            field="reference_image",
        )
    if capabilities is not None:
        _check_size_before_opening(path, capabilities, provider)
    with path.open("rb") as file:
        if capabilities is not None:
            _check_header_before_reading(path, file, capabilities, provider)
        return file.read(), str(path)


def read_image(
    reference: str | bytes, capabilities: Capabilities | None = None, *, provider: str = "the provider"
) -> ImageData:
    """Read a local reference image (path, `file://`, `data:` or bytes) and inspect it.

    With `capabilities`, a file over `image_max_bytes` or `image_max_pixels` is refused from
    its size and header before it is read whole (`check_image` still checks the rest).
    """
    if is_remote(reference):
        raise ValueError("read_image takes a local image; remote URLs are fetched by the provider")
    content, origin = _read_bytes(reference, capabilities, provider)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            image.verify()
        with Image.open(io.BytesIO(content)) as image:
            fmt = image.format or "unknown"
            width, height = image.size
            # A tRNS chunk makes any PNG mode (P, L, RGB) transparent, not only those with an alpha band.
            has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    except Image.DecompressionBombError as exc:
        raise ValidationError(
            f"reference_image ({origin}) claims more pixels than reelgen will decode ({exc}): give a smaller image",
            field="reference_image",
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValidationError(
            f"reference_image ({origin}) is not a readable image: give a JPEG, PNG, WEBP or BMP file",
            field="reference_image",
        ) from exc
    return ImageData(
        content=content,
        format=fmt,
        width=width,
        height=height,
        has_alpha=has_alpha,
        sha256=hashlib.sha256(content).hexdigest(),
        origin=origin,
    )


def resolve_image(
    reference: str | bytes | None, capabilities: Capabilities | None = None, *, provider: str = "the provider"
) -> ImageData | None:
    """Read a local reference image once (None for no image or a remote URL).

    The pipeline's gate calls this, and passes the one `ImageData` on: validation, the
    cache key and the journal use its digest, the provider gets its bytes. With
    `capabilities`, a file too large for them is refused before it is read (`read_image`).
    """
    if reference is None or is_remote(reference):
        return None
    return read_image(reference, capabilities, provider=provider)


def image_key(reference: str | bytes) -> str:
    """What identifies the image for the cache key: its content hash when we can read it.

    Remote URLs are keyed by the URL itself (reading them would cost a download, and an
    `oss://` URL cannot be read here at all).
    """
    if is_remote(reference):
        return "url:" + str(reference)
    content, _ = _read_bytes(reference)
    return "sha256:" + hashlib.sha256(content).hexdigest()


def check_image(image: ImageData, capabilities: Capabilities, *, provider: str) -> None:
    """Raise `ValidationError` if `provider` cannot take this image, saying what to change."""
    where = f"reference_image ({image.origin})"
    if capabilities.image_formats and image.format not in capabilities.image_formats:
        allowed = ", ".join(capabilities.image_formats)
        raise ValidationError(
            f"{where} is {image.format}; {provider} accepts {allowed}: convert the image", field="reference_image"
        )
    if image.has_alpha and not capabilities.image_alpha:
        raise ValidationError(
            f"{where} has an alpha channel (transparency), which {provider} does not accept: "
            "flatten it onto a background or save it as JPEG",
            field="reference_image",
        )
    limit = capabilities.image_max_bytes
    if limit is not None and len(image.content) > limit:
        raise ValidationError(
            f"{where} is {len(image.content)} bytes ({len(image.content) / 1e6:.3g} MB); {provider} accepts at "
            f"most {limit} bytes ({limit / 1e6:.3g} MB): compress or downscale it",
            field="reference_image",
        )
    _check_area(where, image.width, image.height, capabilities, provider)
    if capabilities.image_side_range is not None:
        low, high = capabilities.image_side_range
        for side_name, side in (("width", image.width), ("height", image.height)):
            if not low <= side <= high:
                raise ValidationError(
                    f"{where} is {image.width}x{image.height}; {provider} needs each side between {low} and "
                    f"{high} pixels ({side_name} is {side}): resize the image",
                    field="reference_image",
                )


def to_data_uri(image: ImageData) -> str:
    """The image as a `data:` URI, as providers that take inline images want it."""
    return f"data:{image.mime};base64,{base64.b64encode(image.content).decode('ascii')}"
