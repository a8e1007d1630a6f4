"""Reference images for the strategies: synthesised with Pillow, in every form a request accepts.

A request's `reference_image` can be raw bytes, a path (str or `os.PathLike`), a `file://`
URI, a `data:` URI, or a URL the provider fetches. Images drawn here are small, textured
(so a camera move over them changes the frames), and deterministic in their seed. Files
go into one temporary directory per process; `ImageServer` serves that directory over
loopback HTTP for providers that fetch `http://` URLs.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import io
import math
import random
import shutil
import tempfile
import threading
from functools import lru_cache
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "IMAGE_FORMS",
    "LOCAL_FORMS",
    "WRITABLE_FORMATS",
    "ImageForm",
    "ImageServer",
    "default_image_dir",
    "encode_image",
    "image_as",
    "oversized_image",
]

ImageForm = Literal["bytes", "path", "pathlike", "file_uri", "data_uri", "http", "https", "oss"]
#: Forms the core reads locally (the provider never fetches them itself).
LOCAL_FORMS: tuple[ImageForm, ...] = ("bytes", "path", "pathlike", "file_uri", "data_uri")
IMAGE_FORMS: tuple[ImageForm, ...] = (*LOCAL_FORMS, "http", "https", "oss")
#: Pillow formats the strategies can write, with their file extension and MIME type.
WRITABLE_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "BMP": ("bmp", "image/bmp"),
    "GIF": ("gif", "image/gif"),
    "TIFF": ("tiff", "image/tiff"),
}
#: Where remote URLs that are only validated (never fetched) point.
DUMMY_HOST = "images.reelgen-contracts.invalid"

_dir_lock = threading.Lock()
_image_dir: Path | None = None


def default_image_dir() -> Path:
    """A per-process temporary directory for image files, removed at exit."""
    global _image_dir
    with _dir_lock:
        if _image_dir is None:
            _image_dir = Path(tempfile.mkdtemp(prefix="reelgen-contracts-images-"))
            atexit.register(shutil.rmtree, _image_dir, True)
        return _image_dir


def encode_image(
    width: int, height: int, fmt: str, *, seed: int = 0, alpha: bool = False, text_padding: int = 0
) -> bytes:
    """A textured `width`x`height` image in Pillow format `fmt`, the same for the same seed.

    `text_padding` adds a PNG text chunk of that many bytes: a valid image that is as large
    on disk as a test needs, without the cost of encoding that many pixels.
    """
    from PIL import Image, ImageDraw
    from PIL.PngImagePlugin import PngInfo

    rng = random.Random(seed)
    mode = "RGBA" if alpha else "RGB"
    background = tuple(rng.randrange(0, 256) for _ in range(3))
    image = Image.new(mode, (width, height), (*background, 255) if alpha else background)
    draw = ImageDraw.Draw(image)
    # Blocks of colour at seeded places: enough texture that a pan or zoom changes frames.
    for _ in range(6):
        x0, x1 = sorted(rng.randrange(0, width + 1) for _ in range(2))
        y0, y1 = sorted(rng.randrange(0, height + 1) for _ in range(2))
        colour = tuple(rng.randrange(0, 256) for _ in range(3))
        fill = (*colour, rng.randrange(0, 256)) if alpha else colour
        draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), fill=fill)
    for i in range(0, width, max(4, width // 8)):
        draw.line((i, 0, width - 1 - i, height - 1), fill=(255, 255, 255, 255) if alpha else (255, 255, 255))
    out = io.BytesIO()
    params: dict[str, Any] = {}
    if fmt == "JPEG":
        params["quality"] = 85
    if fmt == "PNG" and text_padding:
        info = PngInfo()
        info.add_text("padding", "x" * text_padding)
        params["pnginfo"] = info
    if fmt == "GIF" and not alpha:
        image = image.convert("P")
    image.save(out, format=fmt, **params)
    data = out.getvalue()
    if text_padding and fmt != "PNG":
        # Other formats: trailing bytes after the image's end marker, which decoders ignore.
        data += b"\0" * text_padding
    return data


def _file_for(content: bytes, fmt: str, directory: Path) -> Path:
    extension = WRITABLE_FORMATS.get(fmt, ("img", ""))[0]
    path = directory / f"{hashlib.sha256(content).hexdigest()[:24]}.{extension}"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        temp = path.with_suffix(path.suffix + f".{threading.get_ident()}.tmp")
        temp.write_bytes(content)
        temp.replace(path)
    return path


def image_as(
    content: bytes,
    fmt: str,
    form: ImageForm,
    *,
    directory: Path | None = None,
    server: ImageServer | None = None,
) -> Any:
    """`content` as a `reference_image` value of the given form.

    `http` uses `server` when given (a URL the provider can really fetch); without it, and
    for `https` and `oss`, the URL is well formed but points nowhere (for validation only).
    """
    if form == "bytes":
        return content
    if form == "data_uri":
        mime = WRITABLE_FORMATS.get(fmt, ("", "application/octet-stream"))[1]
        return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"
    if form in ("http", "https", "oss"):
        name = _file_for(content, fmt, server.directory if server else directory or default_image_dir()).name
        if form == "http" and server is not None:
            return server.url(name)
        return f"{form}://{DUMMY_HOST}/{name}"
    path = _file_for(content, fmt, directory or default_image_dir())
    if form == "path":
        return str(path)
    if form == "pathlike":
        return path
    if form == "file_uri":
        return path.as_uri()
    raise ValueError(f"unknown image form {form!r}")


@lru_cache(maxsize=8)
def oversized_image(max_bytes: int, fmt: str, directory: Path) -> Path:
    """A valid image file of format `fmt` just over `max_bytes` (written once per process)."""
    content = encode_image(32, 32, fmt, seed=1, text_padding=max_bytes + 1)
    return _file_for(content, fmt, directory)


def over_area_image(max_pixels: int, directory: Path, side_range: tuple[int, int] | None = None) -> Path | None:
    """A valid PNG file just over `max_pixels` in area, with sides in `side_range` (None: none fits).

    One bit per pixel and one colour, so even a picture of many megapixels is small to make
    and to store; checking it needs only its header.
    """
    from PIL import Image

    low, high = side_range or (1, 1 << 16)
    width = max(low, min(high, math.isqrt(max_pixels) + 1))
    height = max(low, max_pixels // width + 1)
    if not (low <= height <= high) or width * height <= max_pixels:
        width = high
        height = max(low, max_pixels // width + 1)
        if not (low <= height <= high):
            return None
    buffer = io.BytesIO()
    Image.new("1", (width, height), 1).save(buffer, format="PNG")
    return _file_for(buffer.getvalue(), "PNG", directory)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class ImageServer:
    """Serves a directory of images on a loopback port, for providers that fetch http:// URLs."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_image_dir()
        directory_str = str(self.directory)

        class Handler(_QuietHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=directory_str, **kwargs)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="reelgen-contracts-images", daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, name: str) -> str:
        return f"{self.origin}/{name}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
