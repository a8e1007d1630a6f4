"""Download the provider's video to a local spool file: streamed, capped, hashed, checked.

Memory stays flat whatever the video's size (chunks go straight to disk and into the
hash). The file must start like an MP4 (`ftyp` box), match its Content-Length, and
stay under the size cap; otherwise it is deleted and `IntegrityError` is raised.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import attrs

from .errors import IntegrityError, StorageError, TooLarge, TransientError, redact
from .uris import file_url_to_path, strip_query

__all__ = ["VideoSource", "download_video", "is_mp4_header"]

_CHUNK = 256 * 1024
_MP4_BRANDS_AT = 4


def is_mp4_header(head: bytes) -> bool:
    """True if `head` (the first bytes of a file) starts with an ISO BMFF `ftyp` box."""
    return len(head) >= 12 and head[_MP4_BRANDS_AT : _MP4_BRANDS_AT + 4] == b"ftyp"


@attrs.frozen(kw_only=True)
class VideoSource:
    """A downloaded video waiting to be stored. `path` is a local file the core owns."""

    path: Path
    sha256: str
    bytes: int
    #: The cache key the video is to be named by.
    key: str
    content_type: str = "video/mp4"

    def open(self) -> IO[builtins.bytes]:
        return self.path.open("rb")


def download_video(
    url: str,
    *,
    directory: Path,
    key: str,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    on_progress: Callable[[int, int | None], None] | None = None,
) -> VideoSource:
    """Stream `url` (http(s) or file://) into a new file in `directory`.

    Transient faults (connection errors, 5xx, 429, truncation) raise `TransientError`.
    """
    import httpx

    if url.startswith("file://"):
        return _copy_local(url, directory=directory, key=key, max_bytes=max_bytes, on_progress=on_progress)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=".mp4", dir=directory)
    path = Path(name)
    digest = hashlib.sha256()
    received = 0
    try:
        with (
            os.fdopen(fd, "wb") as out,
            httpx.stream("GET", url, headers=dict(headers or {}), timeout=timeout, follow_redirects=True) as response,
        ):
            if response.status_code in (408, 429) or response.status_code >= 500:
                raise TransientError(f"download answered HTTP {response.status_code}", status_code=response.status_code)
            if response.status_code != 200:
                refused = StorageError(
                    f"cannot download the video: HTTP {response.status_code} from {_safe(url)}"
                    + (" (the provider's URL may have expired)" if response.status_code in URL_GONE else "")
                )
                refused.status_code = response.status_code  # type: ignore[attr-defined]
                raise refused
            declared = response.headers.get("content-length")
            total = int(declared) if declared and declared.isdigit() else None
            if total is not None and total > max_bytes:
                raise TooLarge(f"the video is {total} bytes, over the {max_bytes}-byte storage cap (storage.max_bytes)")
            head = b""
            for chunk in response.iter_bytes(_CHUNK):
                if len(head) < 12:
                    head += chunk[: 12 - len(head)]
                received += len(chunk)
                if received > max_bytes:
                    raise TooLarge(
                        f"the video is over the {max_bytes}-byte storage cap (storage.max_bytes); download stopped"
                    )
                digest.update(chunk)
                out.write(chunk)
                if on_progress is not None:
                    on_progress(received, total)
            if total is not None and received != total:
                raise TransientError(f"download truncated: got {received} of {total} bytes")
            if not is_mp4_header(head):
                raise IntegrityError("the downloaded file is not an MP4 (no 'ftyp' box at the start)")
    except httpx.TransportError as exc:
        path.unlink(missing_ok=True)
        raise TransientError(f"download failed: {type(exc).__name__}: {redact(str(exc))}") from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return VideoSource(path=path, sha256=digest.hexdigest(), bytes=received, key=key)


def _copy_local(
    url: str,
    *,
    directory: Path,
    key: str,
    max_bytes: int,
    on_progress: Callable[[int, int | None], None] | None,
) -> VideoSource:
    source = file_url_to_path(url)
    if not source.is_file():
        raise StorageError(f"cannot read the video: {source} does not exist")
    total = source.stat().st_size
    if total > max_bytes:
        raise TooLarge(f"the video is {total} bytes, over the {max_bytes}-byte storage cap (storage.max_bytes)")
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".download-", suffix=".mp4", dir=directory)
    path = Path(name)
    digest = hashlib.sha256()
    received = 0
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            head = src.read(12)
            src.seek(0)
            if not is_mp4_header(head):
                raise IntegrityError(f"{source} is not an MP4 (no 'ftyp' box at the start)")
            while chunk := src.read(_CHUNK):
                received += len(chunk)
                if received > max_bytes:
                    raise TooLarge(f"the video is over the {max_bytes}-byte storage cap (storage.max_bytes)")
                digest.update(chunk)
                out.write(chunk)
                if on_progress is not None:
                    on_progress(received, total)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return VideoSource(path=path, sha256=digest.hexdigest(), bytes=received, key=key)


#: Download answers that mean the provider's URL is gone (expired, possibly before its stated time).
URL_GONE = (403, 404, 410)


def _safe(url: str) -> str:
    """The URL without its query string (signed URLs carry credentials there)."""
    return strip_query(url)
