"""`--output PATH`: a copy of the stored video where the user wants it, never over an existing file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..contract import VideoResult

__all__ = ["copy_video"]


@contextlib.contextmanager
def _open_stored(url: str, options: dict[str, Any]) -> Iterator[IO[bytes]]:
    from .generate import local_path

    local = local_path(url)
    if local is not None:
        with open(local, "rb") as source:
            yield source
        return
    import fsspec

    with fsspec.open(url, "rb", **options) as source:
        yield source


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def copy_video(result: VideoResult, output: str, *, options: dict[str, Any] | None = None) -> Path:
    """Copy the stored video of `result` to `output`, checking its sha256; never overwrite.

    The copy goes to a temporary file beside `output`, then is hard-linked into place:
    the link fails if `output` appeared meanwhile, so nothing is ever overwritten and no
    half-written file is ever seen at `output`. `options` are the storage's fsspec options
    (`storage.options`, e.g. an S3 endpoint).
    """
    target = Path(output).expanduser()
    where = f"the video is stored at {result.video_url}"
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, _open_stored(result.video_url, dict(options or {})) as source:
            while chunk := source.read(1024 * 1024):
                digest.update(chunk)
                out.write(chunk)
            # mkstemp makes the file private; a user's copy follows their umask like any new file.
            os.fchmod(out.fileno(), 0o666 & ~_umask())
        if digest.hexdigest() != result.sha256:
            raise StorageError(f"{where}, but it no longer matches its sha256; not copied to {output!r}")
        os.link(temp_name, target)
    except FileExistsError:
        raise StorageError(f"{where}; not copied: {output!r} appeared meanwhile and is never overwritten") from None
    except OSError as exc:
        raise StorageError(f"{where}; could not copy it to {output!r}: {exc.strerror or exc}") from exc
    finally:
        Path(temp_name).unlink(missing_ok=True)
    return target
