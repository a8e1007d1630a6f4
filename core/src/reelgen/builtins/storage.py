"""Built-in storage: write the video to any fsspec location, atomically, named by its cache key.

Local directories get a temp file and an `os.replace` (atomic on one filesystem); other
filesystems get an upload to a temporary name and a move, so readers never see half a
file. Registered `trylast`, so a plugin's `reelgen_store_video` answers first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StorageError
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from ..contract import VideoRequest, VideoResult
    from ..download import VideoSource

__all__ = ["store_local", "store_remote"]


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _local_root(url: str) -> Path:
    return Path(url[len("file://") :] if url.startswith("file://") else url).expanduser().resolve()


def store_local(root: Path, name: str, source: VideoSource) -> str:
    """Copy `source` to `root/name` atomically; return its `file://` URL."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    fd, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "wb") as out, source.open() as src:
            shutil.copyfileobj(src, out, 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp_name, final)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return final.as_uri()


def store_remote(url: str, name: str, source: VideoSource, options: dict[str, Any]) -> str:
    """Upload `source` to the fsspec location `url/name` via a temporary name and a move."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, **options)
    root = root.rstrip("/")
    final = f"{root}/{name}"
    temp = f"{root}/.{name}.{uuid.uuid4().hex}.tmp"
    try:
        fs.makedirs(root, exist_ok=True)
        fs.put_file(str(source.path), temp)
        fs.mv(temp, final)
    except BaseException:
        try:
            fs.rm_file(temp)
        except Exception:  # noqa: BLE001 - the temp file may never have been written
            pass
        raise
    return fs.unstrip_protocol(final)  # type: ignore[no-any-return]


@hookimpl(trylast=True)
def reelgen_store_video(request: VideoRequest, result: VideoResult, source: VideoSource) -> VideoResult:
    import attrs

    from ..context import current_config

    storage = current_config().storage
    name = f"{source.key}.mp4"
    try:
        if _is_local(storage.url):
            video_url = store_local(_local_root(storage.url), name, source)
        else:
            video_url = store_remote(storage.url, name, source, dict(storage.options))
    except OSError as exc:
        raise StorageError(f"cannot store the video under {storage.url!r}: {exc}") from exc
    return attrs.evolve(result, video_url=video_url, sha256=source.sha256, bytes=source.bytes)
