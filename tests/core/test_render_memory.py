"""Rendering is bounded in memory whatever the picture's shape, the frame size or the length.

Each case renders in a fresh child process, which reports its own peak resident size
(`VmHWM`: the peak of its own image; `ru_maxrss` would carry over the peak of the
process that forked it, a pytest worker of several hundred MB), so one case's peak never
hides in another's. Before the fix a 16x4000 picture rendered to 640x16 peaked at 828 MB:
the picture was enlarged, whole, to cover the frame at full detail (896x224000 pixels).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LIMIT_MB = 300

_CHILD = """
import json, resource, sys
def _hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
from reelgen.render import render_video
source, out, width, height, fps, duration = sys.argv[1:7]
frames = render_video(
    open(source, "rb").read(), out, width=int(width), height=int(height),
    fps=float(fps), duration=float(duration), seed=7, motion_strength=1.0, audio=True,
)
print(json.dumps({"frames": frames, "peak_mb": _hwm_mb()}))
"""


_PICTURE = """
import sys
from PIL import Image
path, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
Image.effect_mandelbrot((width, height), (-2.0, -1.2, 1.0, 1.2), 40).convert("RGB").save(path)
"""


def _peak_mb(tmp_path: Path, picture: tuple[int, int], frame: tuple[int, int], fps: float, duration: float) -> float:
    source = tmp_path / f"{picture[0]}x{picture[1]}.png"
    if not source.exists():
        # Textured, so every frame of the move differs (nothing an encoder can skip); made in
        # a child too, so a large picture never swells the test process.
        subprocess.run([sys.executable, "-c", _PICTURE, str(source), *map(str, picture)], timeout=300, check=True)
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, str(source), str(tmp_path / "out.mp4"), *map(str, (*frame, fps, duration))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["frames"] == max(1, round(fps * duration))
    return float(report["peak_mb"])


@pytest.mark.parametrize(
    ("picture", "frame", "fps", "duration"),
    [
        ((16, 4000), (640, 16), 30, 2.0),  # the reported case: 828 MB before
        ((4000, 16), (16, 640), 30, 2.0),
        ((16, 4000), (4096, 16), 30, 1.0),  # thin picture, the preview's longest side, both ways
        ((4000, 16), (16, 4096), 30, 1.0),
        ((240, 8000), (240, 8304), 30, 1.0),  # the emulator's thinnest picture at 1080P
        ((8000, 240), (8304, 240), 30, 1.0),
        ((2400, 2400), (1440, 1440), 30, 1.0),  # the emulator's largest frame area (1080P)
        ((8000, 8000), (1440, 1440), 30, 1.0),  # the emulator's largest picture, a PNG
        ((16, 4000), (3840, 2160), 30, 1.0),  # a thin picture into a 4K UHD frame
        ((16, 4000), (640, 16), 120, 60.0),  # the preview's longest video: 7200 frames
        # The preview's largest frame area (max_frame_pixels 3840*2160) from its largest
        # picture area (image_max_pixels 4096*4096), square and at its extreme shapes.
        ((4000, 4000), (3840, 2160), 30, 1.0),  # a square picture into a 4K UHD frame
        ((4096, 4096), (3840, 2160), 30, 1.0),
        ((4096, 4096), (2160, 3840), 30, 1.0),
        ((16384, 1024), (3840, 2160), 30, 1.0),
        ((1024, 16384), (2160, 3840), 30, 1.0),
    ],
)
def test_rendering_peaks_under_the_limit(
    tmp_path: Path, picture: tuple[int, int], frame: tuple[int, int], fps: float, duration: float
) -> None:
    peak = _peak_mb(tmp_path, picture, frame, fps, duration)
    assert peak < LIMIT_MB, f"{picture} -> {frame} at {fps} fps for {duration} s peaked at {peak:.0f} MB"
