"""Peak memory of `reelgen.render.render_video` for the worst shapes, sizes and lengths.

Each case renders in a fresh child process that reports its own peak resident size
(`VmHWM`: the peak of its own image; `ru_maxrss` would carry over the peak of the
process that forked it); the picture is made in another child, so nothing else is counted.
Prints one line per case and the ratio to the 300 MB target. Not a test (the test is
tests/core/test_render_memory.py); `--all` adds the preview's extremes (its largest frame
and picture areas, every shape) and lists the requests it now refuses, with the message.

    .venv/bin/python bench/render_memory.py [--all]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

TARGET_MB = 300

_PICTURE = """
import sys
from PIL import Image
Image.MAX_IMAGE_PIXELS = None
path, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if width * height <= 80_000_000:
    picture = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 1.0, 1.2), 40).convert("RGB")
else:  # too slow to texture; a flat picture decodes to the same size
    picture = Image.new("RGB", (width, height), (30, 140, 220))
picture.save(path)
"""

_RENDER = """
import json, resource, sys, warnings
def _hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning for the largest pictures
from reelgen.render import render_video
source, out, width, height, fps, duration = sys.argv[1:7]
frames = render_video(open(source, "rb").read(), out, width=int(width), height=int(height),
                      fps=float(fps), duration=float(duration), seed=7, motion_strength=1.0, audio=True)
print(json.dumps({"frames": frames, "peak_mb": _hwm_mb()}))
"""

# (picture, frame, fps, seconds, what it is)
CASES = [
    ((16, 4000), (640, 16), 30, 2.0, "thin picture, thin frame (828 MB before)"),
    ((4000, 16), (16, 640), 30, 2.0, "the same, turned"),
    ((16, 4000), (4096, 16), 30, 1.0, "thin picture, preview's longest side"),
    ((240, 8000), (240, 8304), 30, 2.0, "emulator's thinnest picture at 1080P"),
    ((2400, 2400), (1440, 1440), 30, 2.0, "emulator's largest frame area"),
    ((8000, 8000), (1440, 1440), 30, 1.0, "emulator's largest picture (PNG)"),
    ((16, 4000), (640, 16), 120, 60.0, "preview's longest video (7200 frames)"),
    ((4000, 4000), (3840, 2160), 30, 1.0, "a 4K UHD frame (preview's max_frame_pixels)"),
]
#: The preview's extremes: its largest frame area from its largest picture area, every shape.
EXTREMES = [
    ((4096, 4096), (3840, 2160), 30, 1.0, "preview's largest picture and frame areas"),
    ((4096, 4096), (2160, 3840), 30, 1.0, "the same, portrait frame"),
    ((16384, 1024), (3840, 2160), 30, 1.0, "preview's widest largest picture, 4K frame"),
    ((1024, 16384), (2160, 3840), 30, 1.0, "preview's tallest largest picture, portrait 4K"),
]
#: What the preview refused before it declared its area limits (measured: 337-582 MB); now
#: listed with the message it refuses them with, not rendered.
REFUSED = [
    ((16, 4000), (4096, 4096), "preview's largest sides, 16.8 MP frame (was 337 MB)"),
    ((4000, 4000), (4096, 4096), "the same, large picture (was 402 MB)"),
    ((8192, 8192), (1440, 1440), "a 67 MP picture (measured 254 MB here, 409 MB into 4K at 32 MP)"),
    ((16384, 10900), (1440, 1440), "the largest PNG Pillow decoded before (was 582 MB)"),
]


def _refusal(picture: tuple[int, int], frame: tuple[int, int]) -> str:
    """Why the preview refuses this request, offline (empty: it accepts it)."""
    import io

    from PIL import Image

    from reelgen import ValidationError, VideoRequest
    from reelgen.validation import check_request
    from reelgen_preview.capabilities import CAPABILITIES

    buffer = io.BytesIO()  # one bit per pixel: only the header is checked
    Image.new("1", picture, 1).save(buffer, format="PNG")
    request = VideoRequest(prompt="bench", size=f"{frame[0]}*{frame[1]}", reference_image=buffer.getvalue())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning for the largest
            check_request(request, CAPABILITIES, provider="preview")
    except ValidationError as error:
        return str(error)
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also the preview's extremes and refusals")
    args = parser.parse_args()
    cases = CASES + (EXTREMES if args.all else [])
    with tempfile.TemporaryDirectory(prefix="reelgen-bench-render-") as folder:
        work = Path(folder)
        print(f"{'picture':>11} {'frame':>9} {'fps':>4} {'s':>5} {'frames':>6} {'MB':>5} {'/300':>5} {'wall s':>6}")
        for picture, frame, fps, seconds, what in cases:
            source = work / f"{picture[0]}x{picture[1]}.png"
            if not source.exists():
                make = [sys.executable, "-c", _PICTURE, str(source), *map(str, picture)]
                subprocess.run(make, timeout=600, check=True)
            started = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-c", _RENDER, str(source), str(work / "out.mp4"), *map(str, (*frame, fps, seconds))],
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            wall = time.perf_counter() - started
            report = json.loads(run.stdout)
            peak = report["peak_mb"]
            shape, size = f"{picture[0]}x{picture[1]}", f"{frame[0]}x{frame[1]}"
            print(
                f"{shape:>11} {size:>9} {fps:>4} {seconds:>5} {report['frames']:>6} "
                f"{peak:>5.0f} {peak / TARGET_MB:>5.2f} {wall:>6.1f}  {what}"
            )
        for picture, frame, what in REFUSED if args.all else []:
            reason = _refusal(picture, frame)
            shape, size = f"{picture[0]}x{picture[1]}", f"{frame[0]}x{frame[1]}"
            print(f"{shape:>11} {size:>9}  refused ({what}): {reason or 'ACCEPTED: over the target?'}")


if __name__ == "__main__":
    main()
