"""Measuring an MP4: what a stored video really holds (the core's measurement of truth).

`probe_video` reads a file's headers with PyAV (and, if asked, decodes every frame to
catch truncation). PyAV is imported inside the function so `import reelgen` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from .errors import IntegrityError

__all__ = ["VideoProbe", "probe_video"]


@attrs.frozen(kw_only=True)
class VideoProbe:
    """What an MP4 really holds, measured by decoding its headers (and frames, if asked)."""

    duration: float
    fps: float
    width: int
    height: int
    frames: int
    codec: str
    has_audio: bool

    @property
    def size(self) -> str:
        return f"{self.width}*{self.height}"


def _decode_all(container: Any, stream: Any) -> tuple[int, int]:
    """Decode every frame of `stream`: (frames decoded, packets read)."""
    frames = packets = 0
    for packet in container.demux(stream):
        if packet.size:
            packets += 1
        frames += len(packet.decode())  # the final empty packet flushes the decoder
    return frames, packets


def probe_video(path: str | Path, *, decode: bool = False) -> VideoProbe:
    """Measure an MP4 with PyAV. With `decode=True`, decode every frame (catches truncation).

    Raises `IntegrityError` if the file is not a decodable video.
    """
    import av

    try:
        with av.open(str(path)) as container:
            # FFmpeg opens images and other containers too; only the MP4 family is a video here.
            if "mp4" not in container.format.name.split(","):
                raise IntegrityError(f"{path}: not an MP4 video (it is {container.format.long_name})")
            if not container.streams.video:
                raise IntegrityError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            frames = stream.frames
            if decode or not frames:
                listed = frames
                frames, packets = _decode_all(container, stream)
                # A file cut short (between two frames, or inside its index) still opens and
                # decodes what is left without an error: compare with what the index lists.
                if listed and packets < listed:
                    raise IntegrityError(
                        f"{path}: truncated: its index lists {listed} frames but only {packets} are in the file"
                    )
                if not frames:
                    raise IntegrityError(f"{path}: no frame of the video decodes")
            if fps and frames:
                duration = frames / fps
            elif stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = (container.duration or 0) / 1_000_000
            return VideoProbe(
                duration=round(duration, 6),
                fps=round(fps, 6),
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                frames=frames,
                codec=stream.codec_context.name,
                has_audio=bool(container.streams.audio),
            )
    except IntegrityError:
        raise
    except (av.FFmpegError, OSError, ValueError, ZeroDivisionError) as exc:
        raise IntegrityError(f"{path}: not a decodable MP4 video ({exc})") from exc
