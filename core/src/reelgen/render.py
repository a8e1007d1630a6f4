"""Synthetic video: an image animated by a seeded pan and zoom, written as an H.264 MP4.

`render_video` is what the `preview` provider and the DashScope emulator produce; no core
module imports it. Memory stays bounded whatever the picture's shape, the frame size or
the length: the picture is reduced once (never enlarged), and frames are cut from it one
at a time and streamed to the encoder. PyAV and Pillow are imported inside the functions
so `import reelgen` stays light.
"""

from __future__ import annotations

import io
import math
import random
from array import array
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import av
    from PIL import Image

__all__ = ["RenderStopped", "render_video"]

_AUDIO_RATE = 48000


class RenderStopped(Exception):
    """`render_video` was asked to stop (its `should_stop` returned True)."""


def _camera_path(seed: int, strength: float) -> tuple[float, float, float, float, float]:
    """A seeded camera move: start/end pan (fractions of the free margin) and zoom."""
    rng = random.Random(seed)
    zoom_end = 1.0 + 0.35 * strength * rng.uniform(0.5, 1.0)
    direction = rng.uniform(0, 2 * math.pi)
    pan = 0.8 * strength
    return (
        0.5 - pan / 2 * math.cos(direction),
        0.5 - pan / 2 * math.sin(direction),
        0.5 + pan / 2 * math.cos(direction),
        0.5 + pan / 2 * math.sin(direction),
        zoom_end,
    )


def render_video(
    image: bytes | Image.Image,
    out: str | Path | IO[bytes],
    *,
    width: int,
    height: int,
    fps: float,
    duration: float,
    seed: int = 0,
    motion_strength: float = 0.5,
    audio: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> int:
    """Animate `image` with a seeded pan and zoom and write an H.264 MP4 to `out`.

    The image is cropped to the output's aspect ratio (cover), then the camera moves
    across it; `motion_strength` (0 to 1) scales the move. Returns the number of frames.
    Same arguments, same frames: the move depends only on `seed` and `motion_strength`.
    `should_stop` is checked between frames; when it returns True, `RenderStopped` is raised
    (the partial output is the caller's to delete).

    Memory is bounded whatever the image's shape: the picture is reduced once (never
    enlarged), each frame is cut from it, encoded and dropped before the next one.
    """
    import av

    if width % 2 or height % 2:
        raise ValueError(f"H.264 needs even dimensions, got {width}x{height}")
    rate = Fraction(fps).limit_denominator(1001)
    frames = max(1, round(duration * fps))
    path = _camera_path(seed, max(0.0, min(1.0, motion_strength)))
    planes = _planes(_working_picture(image, width, height))

    container = av.open(out, mode="w", format="mp4")
    try:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        # x264 at its cheapest: no lookahead and no B-frames (ultrafast), so it holds only a
        # few frames (about 220 MB at 4096x4096, 36 MB at 1920x1088, measured).
        stream.options = {"preset": "ultrafast", "tune": "stillimage", "crf": "28"}
        audio_stream = None
        if audio:
            audio_stream = container.add_stream("aac", rate=_AUDIO_RATE)
            audio_stream.layout = "mono"
        # A still camera (motion_strength 0) needs one picture: compute and convert it once.
        still = motion_strength <= 0
        frame = None
        for index in range(frames):
            if should_stop is not None and should_stop():
                raise RenderStopped(f"stopped after {index} of {frames} frames")
            if frame is None or not still:
                frame = None  # drop the last frame before cutting the next one
                frame = _frame_at(planes, index / max(1, frames - 1), path, width, height)
            frame.pts = index
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _write_tone(container, audio_stream, seconds=frames / float(rate), seed=seed)
    finally:
        container.close()
    return frames


# The frame is cut from a picture with this much more detail than the widest view needs,
# so a zoomed-in frame stays sharp (the camera zooms in by at most 1.35x).
_OVERSAMPLE = 1.4


# Pillow holds a decoded RGB or RGBA picture at 4 bytes a pixel, FFmpeg an RGB one at 3 and
# can reduce it on the way out: pictures above this many decoded bytes go through FFmpeg.
_LARGE_DECODE = 64 * 1024 * 1024


def _decode_reduced(data: bytes, size: tuple[int, int]) -> Image.Image | None:
    """A large PNG/WEBP/BMP/GIF decoded by FFmpeg and reduced to `size` in one step (area
    averaging), or None if FFmpeg cannot read it (Pillow then decodes it whole).

    An 8000x8000 PNG peaks at about 235 MB this way instead of about 300 MB with Pillow.
    """
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            frame = next(container.decode(video=0))
            reduced = frame.reformat(width=size[0], height=size[1], format="rgb24", interpolation="AREA")
            del frame
    except (av.FFmpegError, StopIteration, ValueError, OSError):
        return None
    picture: Image.Image = reduced.to_image()  # type: ignore[no-untyped-call]
    return picture


def _working_picture(image: bytes | Image.Image, width: int, height: int) -> Image.Image:
    """The RGB picture frames are cut from: the image, reduced once if larger than needed.

    Never enlarged: a thin picture (16x4000 into 640x16) enlarged to cover the frame at
    full detail would be 896x224000 pixels (600 MB); each frame scales only the view it
    shows instead. A large picture is reduced by a whole factor (a box filter, which
    allocates only its result), before the conversion to RGB, to at most twice the
    detail a frame can use. A large JPEG is decoded at reduced scale (`draft`), other
    large pictures by FFmpeg, which reduces them as it converts.
    """
    from PIL import Image

    source = image if isinstance(image, Image.Image) else Image.open(io.BytesIO(image))
    if not isinstance(image, Image.Image):
        detail = max(width / source.width, height / source.height) * _OVERSAMPLE
        if detail < 1:
            wanted = (math.ceil(source.width * detail), math.ceil(source.height * detail))
            if source.format != "JPEG" and source.width * source.height * 4 > _LARGE_DECODE:
                reduced = _decode_reduced(image, wanted)
                if reduced is not None:
                    return reduced
            source.draft("RGB", wanted)
        source.load()
    # Working pixels per source pixel that the widest view (the whole cover crop) can use.
    detail = max(width / source.width, height / source.height) * _OVERSAMPLE
    factor = math.floor(1 / detail)
    if factor >= 2 and source.mode not in ("P", "PA", "1"):  # palette images are converted first
        source = source.reduce(factor)
        factor = 1
    if source.mode != "RGB":
        source = source.convert("RGB")
    if factor >= 2:
        source = source.reduce(factor)
    return source


def _write_tone(container: Any, stream: Any, *, seconds: float, seed: int) -> None:
    """A quiet seeded tone, so files with audio really carry an audio track.

    Written with the standard library (`array`, `math`): the core needs no numpy.
    """
    import av

    frequency = 220.0 + (seed % 12) * 20.0
    step = 2 * math.pi * frequency / _AUDIO_RATE
    samples_total = int(seconds * _AUDIO_RATE)
    frame_size = getattr(getattr(stream, "codec_context", None), "frame_size", 0) or 1024
    pts = 0
    while pts < samples_total:
        count = min(frame_size, samples_total - pts)
        wave = array("f", [0.1 * math.sin(step * n) for n in range(pts, pts + count)])  # native, as fltp is
        frame = av.AudioFrame(format="fltp", layout="mono", samples=count)
        memoryview(frame.planes[0]).cast("B")[: count * 4] = wave.tobytes()
        frame.sample_rate = _AUDIO_RATE
        frame.pts = pts
        pts += count
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _frame_at(
    planes: tuple[Image.Image, Image.Image, Image.Image],
    t: float,
    path: tuple[float, float, float, float, float],
    width: int,
    height: int,
) -> av.VideoFrame:
    """The yuv420p frame at time `t` (0 to 1) of the camera move over the picture's planes."""
    import av
    from PIL import Image

    x0, y0, x1, y1, zoom_end = path
    base_w, base_h = planes[0].size
    aspect = width / height
    view_w_full = min(base_w, base_h * aspect)
    ease = t * t * (3 - 2 * t)
    view_w = view_w_full / (1.0 + (zoom_end - 1.0) * ease)
    # min(): float rounding can make the view a hair taller than the picture, and Pillow
    # refuses a box that leaves the image ("box offset can't be negative").
    view_h = min(base_h, view_w / aspect)
    cx = (x0 + (x1 - x0) * ease) * (base_w - view_w) + view_w / 2
    cy = (y0 + (y1 - y0) * ease) * (base_h - view_h) + view_h / 2
    box = (cx - view_w / 2, cy - view_h / 2, cx + view_w / 2, cy + view_h / 2)
    frame = av.VideoFrame(width, height, "yuv420p")
    # Each plane is scaled straight from the picture's view into the frame: no RGB frame,
    # no conversion buffer; the chroma planes are scaled to half size (4:2:0) directly.
    chroma = (width // 2, height // 2)
    for plane, channel, size in zip(frame.planes, planes, ((width, height), chroma, chroma), strict=True):
        _fill(plane, channel.resize(size, Image.Resampling.BILINEAR, box=box).tobytes(), size[0])
    return frame


def _fill(plane: Any, data: bytes, width: int) -> None:
    """Copy rows of `width` bytes into a frame plane, whose rows may be padded."""
    target = memoryview(plane)
    stride = plane.line_size
    if stride == width:
        target[: len(data)] = data
        return
    source = memoryview(data)
    for row in range(len(data) // width):
        target[row * stride : row * stride + width] = source[row * width : (row + 1) * width]


# Pillow's YCbCr is full range (JPEG); yuv420p video is limited range (16-235, 16-240).
_LUMA = [round(16 + value * 219 / 255) for value in range(256)]
_CHROMA = [round(128 + (value - 128) * 224 / 255) for value in range(256)]


def _planes(picture: Image.Image) -> tuple[Image.Image, Image.Image, Image.Image]:
    """The picture as BT.601 limited-range Y, Cb and Cr planes, converted once."""
    ycc = picture.convert("YCbCr")
    y, cb, cr = (ycc.getchannel(index).point(lut) for index, lut in enumerate((_LUMA, _CHROMA, _CHROMA)))
    return y, cb, cr
