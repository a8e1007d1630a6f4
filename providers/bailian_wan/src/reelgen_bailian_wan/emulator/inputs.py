"""Getting input media (`img_url`, `audio_url`) the way the service's data inspection does.

Accepted forms: a `data:` URI, an `oss://` key from this emulator's own uploads (only
with the `X-DashScope-OssResourceResolve: enable` header), and http(s) URLs. The
emulator never reaches the internet: only loopback hosts (127.0.0.0/8, localhost,
::1) are fetched, redirects included; any other host fails at once the way an
unreachable URL fails on the real service (`InvalidParameter.DataInspection`,
"Download the media resource timed out ...").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import ipaddress
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import IO
from urllib.parse import urlsplit

import attrs

from .errors import DOWNLOAD_TIMED_OUT, MEDIA_NOT_FOUND, ApiError

__all__ = ["ImageInfo", "MediaFetcher", "inspect_audio", "inspect_image", "is_loopback_url"]

_DATA_URI = re.compile(r"^data:(?P<mime>[^;,]*)(?P<params>(;[^;,]*)*),(?P<data>.*)$", re.DOTALL)
_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "BMP": "BMP", "WEBP": "WEBP"}

OssLookup = Callable[[str], "bytes | None"]


def _format_error() -> ApiError:
    return ApiError(400, "InvalidParameter.DataInspection")


def _download_error(message: str = DOWNLOAD_TIMED_OUT) -> ApiError:
    return ApiError(400, "InvalidParameter.DataInspection", message)


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _LoopbackRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only while they stay on loopback."""

    def redirect_request(  # type: ignore[no-untyped-def]
        self, req, fp, code, msg, headers, newurl
    ):
        if not is_loopback_url(newurl):
            raise _download_error()
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@attrs.frozen
class ImageInfo:
    sha256: str
    format: str
    width: int
    height: int
    has_alpha: bool
    size: int


class MediaFetcher:
    """Turns an input URL into bytes, or raises the `ApiError` the service would."""

    def __init__(self, *, timeout: float, oss_lookup: OssLookup) -> None:
        self.timeout = timeout
        self.oss_lookup = oss_lookup
        # No proxies: a loopback URL must never leave the machine.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _LoopbackRedirects())

    def fetch(self, url: str, *, limit: int, oss_resolve: bool) -> bytes:
        """The media bytes, at most `limit + 1` of them (so callers can see "too big")."""
        if url.startswith("data:"):
            return _decode_data_uri(url)
        if url.startswith("oss://"):
            if not oss_resolve:
                raise ApiError(400, "InvalidURL")
            data = self.oss_lookup(url[len("oss://") :])
            if data is None:
                raise _download_error(MEDIA_NOT_FOUND)
            return data
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise ApiError(400, "InvalidURL")
        if not is_loopback_url(url):
            raise _download_error()
        return self._get(url, limit)

    def _get(self, url: str, limit: int) -> bytes:
        request = urllib.request.Request(url, headers={"User-Agent": "dashscope-emulator"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                body: IO[bytes] = response
                return body.read(limit + 1)
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404, 410):
                raise _download_error(MEDIA_NOT_FOUND) from None
            raise _download_error() from None
        except ApiError:
            raise
        except (OSError, ValueError):
            raise _download_error() from None


def _decode_data_uri(url: str) -> bytes:
    match = _DATA_URI.match(url)
    if not match or ";base64" not in match["params"].lower():
        raise _format_error()
    try:
        return base64.b64decode("".join(match["data"].split()), validate=True)
    except (binascii.Error, ValueError):
        raise _format_error() from None


def inspect_image(data: bytes) -> ImageInfo:
    """Format and size of an image, or the data-inspection format error (400)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = _FORMATS.get(image.format or "")
            if image_format is None:
                raise _format_error()
            width, height = image.size
            has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
                image.mode == "P" and "transparency" in image.info
            )
            # Decode the pixels too: a truncated file must fail here, not in the render.
            image.load()
    except ApiError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise _format_error() from None
    return ImageInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        format=image_format,
        width=width,
        height=height,
        has_alpha=has_alpha,
        size=len(data),
    )


def inspect_audio(data: bytes) -> str:
    """ "wav" or "mp3" by signature, or the data-inspection format error (400)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    raise _format_error()
