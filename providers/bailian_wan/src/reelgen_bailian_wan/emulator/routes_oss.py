"""The OSS stand-ins: the upload bucket's form posts and the result bucket's signed downloads.

Errors here are OSS's XML (`OssError`), not DashScope's JSON; a download may meet the
injected download faults (cut short, or complete but undecodable).
"""

from __future__ import annotations

import hashlib
import re
import time
from typing import TYPE_CHECKING

from .errors import OssError
from .oss import RESULT_BUCKET, UPLOAD_BUCKET
from .routes import Route, route
from .wire import Reply, Request

if TYPE_CHECKING:
    from .service import Service

__all__ = ["ROUTES", "corrupt_mp4"]

_HOST = "{}.oss-cn-beijing.aliyuncs.com"


def upload(service: Service, request: Request, rid: str) -> Reply:
    with service.store.lock:
        service.store.counters.uploads += 1
    status, etag = service.oss.upload(request.header("content-type"), request.body)
    headers = {"ETag": f'"{etag}"', "x-oss-request-id": rid, "Server": "AliyunOSS"}
    if status == 201:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse>\n'
            f"  <Bucket>{UPLOAD_BUCKET}</Bucket>\n  <ETag>&quot;{etag}&quot;</ETag>\n"
            "</PostResponse>\n"
        ).encode()
        return Reply(201, body, "application/xml", headers)
    return Reply(status, b"", None, headers)


def download(service: Service, request: Request, rid: str, key: str) -> Reply:
    with service.store.lock:
        service.store.counters.downloads += 1
    path = service.oss.open_result(key, request.query)
    size = path.stat().st_size
    stat = path.stat()
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": f'"{hashlib.md5(f"{path.name}{size}".encode()).hexdigest().upper()}"',
        "Last-Modified": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(stat.st_mtime)),
        "x-oss-request-id": rid,
        "x-oss-object-type": "Normal",
        "Server": "AliyunOSS",
    }
    span = _byte_range(request.header("range"), size)
    fault = service.injector.download_fault() if request.method == "GET" else None
    if fault == "corrupt":
        service.inject("corrupt_download")
        return Reply(200, corrupt_mp4(path.read_bytes()), "video/mp4", headers)
    if fault == "truncate":
        service.inject("truncate_download")
    status = 206 if span is not None else 200
    if span is not None:
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
    return Reply(status, b"", "video/mp4", headers, file=path, file_range=span, fault="truncate" if fault else None)


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a single `bytes=` range, None for the whole file."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or (not match[1] and not match[2]):
        return None  # not a single byte range: OSS then serves the whole object
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:
        start, end = max(0, size - int(match[2])), size - 1
    if start >= size or start > end:
        raise OssError(416, "InvalidRange", "The requested range cannot be satisfied.")
    return start, end


def corrupt_mp4(data: bytes) -> bytes:
    """Same length, but undecodable: the top-level `moov` box is renamed `free` and
    a stretch of the media data is scrambled."""
    out = bytearray(data)
    offset = 0
    while offset + 8 <= len(out):
        size = int.from_bytes(out[offset : offset + 4], "big")
        if out[offset + 4 : offset + 8] == b"moov":
            out[offset + 4 : offset + 8] = b"free"
        if size < 8:
            break
        offset += size
    middle = len(out) // 2
    for index in range(middle, min(len(out), middle + 4096)):
        out[index] ^= 0x5A
    return bytes(out)


ROUTES: list[Route] = [
    route("POST", rf"/oss/{UPLOAD_BUCKET}/?", upload, "oss", _HOST.format(UPLOAD_BUCKET)),
    route("GET", rf"/oss/{RESULT_BUCKET}/(?P<key>.+)", download, "oss", _HOST.format(RESULT_BUCKET)),
    route("HEAD", rf"/oss/{RESULT_BUCKET}/(?P<key>.+)", download, "oss", _HOST.format(RESULT_BUCKET)),
]
