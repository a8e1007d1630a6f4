"""Built-in storage: each take in its own file, never overwriting one, its sha256 checked.

Guarantees, for a local folder and for any fsspec URL:

- **One file per take.** The name is the cache key's first 16 characters and the job id
  (`3fa9c2d1e0b4a7f6-bailian_wan-8c1f....mp4`), or a random take id when there is no job
  id. Two takes of one request never share a name.
- **Never overwritten.** A local file appears through `os.link` of a finished temp file
  (the link fails if the name exists; nothing partial is ever visible under it). S3 gets a
  single conditional put (`If-None-Match: *`), so the server itself refuses to replace an
  object and S3 never shows a partial object. Other fsspec filesystems get an upload to a
  temporary name, a check and a move. When the name is taken by another file, the next
  free name (`-2`, `-3`, ...) is used; when it already holds this very video (the same take
  delivered twice), that file is the answer.
- **The recorded sha256 matches.** Local writes are hashed as they are written; remote
  uploads are read back and hashed before the result is returned.
- Files follow the umask (temp files are created 0600, so the mode is set explicitly).
- With `storage.sidecar = true` a JSON file with the request and result sits beside each video.

Registered `trylast`, so a plugin's `reelgen_store_video` answers first.
`reelgen_check_storage(config)` refuses an unusable location before anything is paid.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import ConfigError, IntegrityError, StorageError
from ..hookspecs import hookimpl
from ..uris import file_url_to_path

if TYPE_CHECKING:
    from ..config import Config
    from ..contract import VideoRequest, VideoResult
    from ..download import VideoSource

__all__ = [
    "check_storage",
    "is_durable",
    "presign",
    "store_local",
    "store_remote",
    "take_name",
]

_CHUNK = 1024 * 1024
#: Multipart part size for S3 uploads: memory stays at about one part whatever the video's size.
_S3_PART = 8 * 1024 * 1024
#: How many `-N` suffixes to try before giving up (only files that are not this take hold them).
_MAX_SUFFIX = 100
_S3_PROTOCOLS = frozenset({"s3", "s3a"})
#: Protocols whose data lives only in this process.
_VOLATILE_PROTOCOLS = frozenset({"memory"})
#: What to install for a protocol fsspec knows but cannot load.
# The `reelgen[s3]` extra's content: reelgen is not on a package index yet, so name the package itself.
_EXTRAS = {"s3": "pip install s3fs (the reelgen[s3] extra)", "s3a": "pip install s3fs (the reelgen[s3] extra)"}

_checked_lock = threading.Lock()
_checked_remote: set[str] = set()


# -- names -------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")


def take_name(key: str, job_id: str | None = None) -> str:
    """The file name of one take: cache-key prefix, then the job id (or a random take id)."""
    prefix = _slug(key)[:16] or "video"
    take = _slug(job_id.replace(":", "-")) if job_id else ""
    return f"{prefix}-{take or 'take-' + uuid.uuid4().hex[:16]}.mp4"


def _candidates(name: str) -> Iterator[str]:
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    yield name
    for index in range(2, _MAX_SUFFIX + 1):
        yield f"{stem}-{index}.{suffix}" if suffix else f"{stem}-{index}"


# -- local -------------------------------------------------------------------------


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _local_root(url: str) -> Path:
    if url.startswith("file://"):
        return file_url_to_path(url).resolve()
    return Path(url).expanduser().resolve()


def _umask() -> int:
    # /proc tells it without changing it; os.umask() is set-and-restore, which races with
    # other threads creating files in between.
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode() -> int:
    return 0o666 & ~_umask()


def _copy_hashing(source: IO[bytes], out: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
        out.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _hash_stream(stream: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def _local_holds(path: Path, sha256: str, size: int) -> bool:
    """Does `path` already hold exactly this video (the same take delivered again)?"""
    try:
        if path.stat().st_size != size:
            return False
        with path.open("rb") as handle:
            return _hash_stream(handle)[0] == sha256
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot sync a directory; the file itself is synced
    finally:
        os.close(fd)


def _place_exclusively(temp: Path, final: Path) -> bool:
    """Give the finished `temp` the name `final` unless that name exists. True if placed."""
    try:
        os.link(temp, final)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
    # A filesystem without hard links: claim the name with O_EXCL (an empty file for a
    # moment), then rename the finished file over our own claim.
    try:
        fd = os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    os.replace(temp, final)
    return True


def store_local(root: Path, name: str, source: VideoSource) -> str:
    """Copy `source` under `root` as `name` (or the next free `name-N`); return its `file://` URL.

    Never replaces an existing file; a file that already holds this exact video is reused.
    """
    root.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=root)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out, source.open() as src:
            sha256, size = _copy_hashing(src, out)
            out.flush()
            os.fchmod(out.fileno(), _file_mode())
            os.fsync(out.fileno())
        if (sha256, size) != (source.sha256, source.bytes):
            raise IntegrityError(
                f"the video changed while it was stored (sha256 {sha256[:12]}..., expected {source.sha256[:12]}...)"
            )
        for candidate in _candidates(name):
            final = root / candidate
            if _place_exclusively(temp, final):
                _fsync_dir(root)
                return final.as_uri()
            if _local_holds(final, source.sha256, source.bytes):
                return final.as_uri()
        raise StorageError(f"no free file name for {name!r} in {root} after {_MAX_SUFFIX} tries")
    finally:
        temp.unlink(missing_ok=True)


# -- remote (fsspec) ---------------------------------------------------------------


def _protocol(url: str) -> str:
    from fsspec.core import split_protocol

    protocol, _ = split_protocol(url)
    return (protocol or "file").lower()


def _remote_holds(fs: Any, path: str, sha256: str, size: int) -> bool:
    try:
        if int(fs.size(path)) != size:
            return False
        return _remote_digest(fs, path) == (sha256, size)
    except (OSError, ValueError):
        return False


def _remote_digest(fs: Any, path: str) -> tuple[str, int]:
    """Read `path` back and hash it (what is really stored, not what was sent)."""
    if hasattr(fs, "invalidate_cache"):
        fs.invalidate_cache(path)
    with fs.open(path, "rb", block_size=_CHUNK) as handle:
        return _hash_stream(handle)


def _exists(fs: Any, path: str) -> bool:
    if hasattr(fs, "invalidate_cache"):
        fs.invalidate_cache(path)
    return bool(fs.exists(path))


def _verify_or_remove(fs: Any, path: str, source: VideoSource) -> None:
    stored = _remote_digest(fs, path)
    if stored != (source.sha256, source.bytes):
        with contextlib.suppress(Exception):
            fs.rm_file(path)
        raise IntegrityError(
            f"the uploaded video does not match the download (sha256 {stored[0][:12]}..., "
            f"{stored[1]} bytes; expected {source.sha256[:12]}..., {source.bytes} bytes); it was removed"
        )


def _store_s3(fs: Any, root: str, name: str, source: VideoSource) -> str:
    """One conditional put per candidate name: S3 refuses to replace an existing object
    (`If-None-Match: *`, also on the multipart completion) and never shows a partial one."""
    for candidate in _candidates(name):
        path = f"{root}/{candidate}"
        # Also checked here: an S3-compatible server that ignores If-None-Match would
        # otherwise replace the object (the condition still closes the race on AWS S3).
        if _exists(fs, path):
            if _remote_holds(fs, path, source.sha256, source.bytes):
                return str(fs.unstrip_protocol(path))
            continue
        try:
            fs.put_file(str(source.path), path, mode="create", chunksize=_S3_PART)
        except FileExistsError:
            if _remote_holds(fs, path, source.sha256, source.bytes):
                return str(fs.unstrip_protocol(path))
            continue
        _verify_or_remove(fs, path, source)
        return str(fs.unstrip_protocol(path))
    raise StorageError(f"no free object name for {name!r} under {root} after {_MAX_SUFFIX} tries")


def _store_generic(fs: Any, root: str, name: str, source: VideoSource) -> str:
    """Upload to a temporary name, verify it, then move it to the first free name."""
    fs.makedirs(root, exist_ok=True)
    temp = f"{root}/.{name}.{uuid.uuid4().hex}.part"
    try:
        fs.put_file(str(source.path), temp)
        _verify_or_remove(fs, temp, source)
        for candidate in _candidates(name):
            path = f"{root}/{candidate}"
            if _exists(fs, path):
                if _remote_holds(fs, path, source.sha256, source.bytes):
                    return str(fs.unstrip_protocol(path))
                continue
            fs.mv(temp, path)
            if int(fs.size(path)) != source.bytes:
                raise IntegrityError(f"{path} has the wrong size after the move")
            return str(fs.unstrip_protocol(path))
        raise StorageError(f"no free name for {name!r} under {root} after {_MAX_SUFFIX} tries")
    finally:
        try:
            if fs.exists(temp):
                fs.rm_file(temp)
        except Exception:  # noqa: BLE001 - cleanup of a temp name must not hide the real outcome
            pass


def store_remote(url: str, name: str, source: VideoSource, options: dict[str, Any]) -> str:
    """Upload `source` to the fsspec location `url` as `name` (or the next free name); return its URL."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, **options)
    root = root.rstrip("/")
    if _protocol(url) in _S3_PROTOCOLS:
        return _store_s3(fs, root, name, source)
    return _store_generic(fs, root, name, source)


# -- sidecar -----------------------------------------------------------------------


def _sidecar_document(request: VideoRequest, result: VideoResult, job_id: str | None) -> bytes:
    from .._store import sanitized_request
    from ..serialization import unstructure

    document = {
        "schema": "reelgen.sidecar/1",
        "job_id": job_id,
        "request": sanitized_request(request),
        "result": unstructure(result),
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def _sidecar_url(video_url: str) -> str:
    return video_url[: -len(".mp4")] + ".json" if video_url.endswith(".mp4") else video_url + ".json"


def write_sidecar(video_url: str, document: bytes, options: dict[str, Any]) -> str | None:
    """Write the sidecar beside the stored video, never over an existing file. Returns its URL."""
    target = _sidecar_url(video_url)
    if target.startswith("file://"):
        path = _local_root(target)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _file_mode())
        except FileExistsError:
            return target if path.read_bytes() == document else None
        with os.fdopen(fd, "wb") as out:
            out.write(document)
            out.flush()
            os.fsync(out.fileno())
        return target
    import fsspec

    fs, path = fsspec.core.url_to_fs(target, **options)
    if _exists(fs, path):
        return target if fs.cat_file(path) == document else None
    if _protocol(target) in _S3_PROTOCOLS:
        fs.pipe_file(path, document, mode="create")
    else:
        fs.pipe_file(path, document)
    return target


# -- checks ------------------------------------------------------------------------


def is_durable(url: str) -> bool:
    """False for storage that vanishes with the process (`memory://`)."""
    if "://" not in url:
        return True
    return _protocol(url) not in _VOLATILE_PROTOCOLS


def _options_key(url: str, options: dict[str, Any]) -> str:
    return url + "\0" + json.dumps(options, sort_keys=True, default=str)


def check_storage(url: str, options: dict[str, Any] | None = None) -> None:
    """Raise `ConfigError` with the fix when videos cannot be stored at `url`."""
    from ..config import is_disabled

    options = dict(options or {})
    if is_disabled(url):
        raise ConfigError(
            f"storage.url is {url!r}, but storage cannot be switched off (a paid video must be kept): "
            "set storage.url to a folder or an fsspec URL such as s3://bucket/prefix"
        )
    if _is_local(url):
        _check_local(url)
        return
    key = _options_key(url, options)
    with _checked_lock:
        if key in _checked_remote:
            return
    _check_remote(url, options)
    with _checked_lock:
        _checked_remote.add(key)


def _check_local(url: str) -> None:
    root = _local_root(url)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"storage.url {url!r}: the folder {root} does not exist and cannot be created "
            f"({exc.strerror or exc}); create it or set storage.url to a folder you can write"
        ) from exc
    try:
        fd, probe = tempfile.mkstemp(prefix=".reelgen-probe-", dir=root)
    except OSError as exc:
        raise ConfigError(
            f"storage.url {url!r}: cannot write in {root} ({exc.strerror or exc}); "
            "make the folder writable or set storage.url to another one"
        ) from exc
    os.close(fd)
    Path(probe).unlink()


def _check_remote(url: str, options: dict[str, Any]) -> None:
    import fsspec

    protocol = _protocol(url)
    try:
        fsspec.get_filesystem_class(protocol)
    except ImportError as exc:
        fix = _EXTRAS.get(protocol, f"install the fsspec implementation for {protocol}://")
        raise ConfigError(f"storage.url {url!r}: {protocol}:// is not installed ({exc}); {fix}") from exc
    except ValueError as exc:
        raise ConfigError(
            f"storage.url {url!r}: fsspec knows no protocol {protocol!r}; use a local folder or a URL "
            "such as s3://bucket/prefix"
        ) from exc
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
        root = root.rstrip("/")
        if protocol not in _S3_PROTOCOLS:
            # S3 has no folders (and makedirs on a bucket would create the bucket).
            fs.makedirs(root, exist_ok=True)
        probe = f"{root}/.reelgen-probe-{uuid.uuid4().hex}"
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    except Exception as exc:  # any failure here means we cannot store there
        from ..errors import redact

        raise ConfigError(
            f"storage.url {url!r}: cannot write there ({type(exc).__name__}: {redact(str(exc))}); check that "
            "the bucket or folder exists, the credentials in the environment may write to it, and "
            "storage.options (endpoint_url, region_name, ...)"
        ) from exc


def presign(video_url: str, *, expires: int = 3600, options: dict[str, Any] | None = None) -> str:
    """A time-limited HTTPS URL for a stored video (S3 and others whose fsspec can sign).

    The stored `video_url` stays the durable one; a presigned URL is for handing out.
    """
    if video_url.startswith("file://") or "://" not in video_url:
        raise StorageError(f"{video_url!r} is a local file: there is nothing to presign")
    import fsspec

    fs, path = fsspec.core.url_to_fs(video_url, **dict(options or {}))
    try:
        return str(fs.sign(path, expiration=expires))
    except NotImplementedError as exc:
        raise StorageError(f"{_protocol(video_url)}:// storage cannot make presigned URLs") from exc


# -- hooks -------------------------------------------------------------------------


def _stored(
    request: VideoRequest, result: VideoResult, source: VideoSource, config: Config, job_id: str | None
) -> VideoResult:
    import attrs

    storage = config.storage
    options = dict(storage.options)
    name = take_name(source.key, job_id)
    store: Callable[[], str]
    if _is_local(storage.url):
        root = _local_root(storage.url)

        def store() -> str:
            return store_local(root, name, source)

    else:

        def store() -> str:
            return store_remote(storage.url, name, source, options)

    try:
        video_url = store()
    except StorageError:
        raise
    except OSError as exc:
        raise StorageError(f"cannot store the video under {storage.url!r}: {exc}") from exc
    stored = attrs.evolve(result, video_url=video_url, sha256=source.sha256, bytes=source.bytes)
    if getattr(storage, "sidecar", False):
        try:
            write_sidecar(video_url, _sidecar_document(request, stored, job_id), options)
        except OSError as exc:
            raise StorageError(f"the video is stored at {video_url}, but its sidecar could not be: {exc}") from exc
    return stored


@hookimpl(trylast=True)
def reelgen_store_video(
    request: VideoRequest, result: VideoResult, source: VideoSource, config: Config, job_id: str | None
) -> VideoResult:
    return _stored(request, result, source, config, job_id)


@hookimpl(trylast=True)
def reelgen_check_storage(config: Config) -> None:
    check_storage(config.storage.url, dict(config.storage.options))
