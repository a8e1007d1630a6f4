"""`render_video` and `probe_video` on real, small H.264 files decoded with PyAV."""

from __future__ import annotations

import hashlib
import io
import math
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from reelgen import IntegrityError
from reelgen.probe import probe_video
from reelgen.render import RenderStopped, render_video

W, H = 64, 48


@pytest.fixture(scope="session")
def picture() -> Image.Image:
    """A textured picture, so that any camera move changes the pixels."""
    return Image.effect_mandelbrot((160, 120), (-2.0, -1.2, 1.0, 1.2), 60).convert("RGB")


@pytest.fixture(scope="session")
def picture_png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def frames_of(path: Path | io.BytesIO) -> list[bytes]:
    """Every decoded frame's RGB pixels."""
    with av.open(path) as container:
        return [frame.to_ndarray(format="rgb24").tobytes() for frame in container.decode(video=0)]


def render(picture: Any, path: Path, **kwargs: Any) -> Path:
    arguments: dict[str, Any] = {"width": W, "height": H, "fps": 10, "duration": 1.0, "seed": 1, **kwargs}
    render_video(picture, path, **arguments)
    return path


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory, picture: Image.Image) -> Path:
    return render(picture, tmp_path_factory.mktemp("media") / "clip.mp4", fps=12, duration=1.0)


def faststart_copy(source: Path, target: Path) -> Path:
    """Remux with the index (moov) first, as web-optimized MP4s from providers often are."""
    with av.open(source) as src, av.open(target, "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target


# --- render and measure ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fps, duration, audio",
    [(24, 1.0, False), (23.976, 1.0, True), (29.97, 0.5, False), (30, 0.4, True), (12.5, 0.8, False), (8, 2.0, False)],
)
def test_rendered_video_measures_as_asked(
    picture: Image.Image, tmp_path: Path, fps: float, duration: float, audio: bool
) -> None:
    path = tmp_path / "out.mp4"
    frames = render_video(picture, path, width=W, height=H, fps=fps, duration=duration, seed=3, audio=audio)
    assert frames == max(1, round(duration * fps))
    probe = probe_video(path)
    assert (probe.width, probe.height, probe.size, probe.codec) == (W, H, f"{W}*{H}", "h264")
    assert probe.frames == frames
    assert probe.fps == pytest.approx(fps, rel=1e-4)
    assert probe.duration == pytest.approx(frames / fps, rel=1e-4)
    assert abs(probe.duration - duration) <= 0.5 / fps + 1e-6
    assert probe.has_audio is audio
    with av.open(str(path)) as container:
        assert container.format.name.startswith("mov,mp4")
        assert len(container.streams.audio) == (1 if audio else 0)
        if audio:
            assert container.streams.audio[0].codec_context.name == "aac"
            assert sum(1 for _ in container.decode(audio=0)) > 0
    assert probe_video(path, decode=True) == probe


@settings(max_examples=min(settings().max_examples, 8))
@given(
    width=st.integers(8, 80).map(lambda n: n * 2),
    height=st.integers(8, 80).map(lambda n: n * 2),
    fps=st.sampled_from([10.0, 15, 24, 25, 30, 23.976, 29.97, 59.94]) | st.floats(5, 60),
    duration=st.floats(0.1, 1.0),
)
def test_any_size_rate_and_duration_measure_as_asked(
    picture: Image.Image, tmp_path_factory: pytest.TempPathFactory, width: int, height: int, fps: float, duration: float
) -> None:
    path = tmp_path_factory.mktemp("any") / "out.mp4"
    frames = render_video(picture, path, width=width, height=height, fps=fps, duration=duration, seed=0)
    probe = probe_video(path, decode=True)
    assert (probe.width, probe.height, probe.frames) == (width, height, frames)
    assert probe.fps == pytest.approx(fps, rel=2e-3)
    assert abs(probe.duration - duration) <= 0.5 / fps + 0.01


@settings(max_examples=min(settings().max_examples, 30))
@given(
    source=st.tuples(st.integers(1, 400), st.integers(1, 400)),
    width=st.integers(8, 64).map(lambda n: n * 2),
    height=st.integers(8, 64).map(lambda n: n * 2),
    seed=st.integers(0, 2**63 - 1),
    strength=st.floats(0.0, 1.0),
)
def test_any_picture_renders_at_any_size(
    source: tuple[int, int], width: int, height: int, seed: int, strength: float
) -> None:
    # Every aspect ratio of picture and of video, every camera move: the view stays inside the picture.
    picture = Image.new("RGB", source, (90, 160, 30))
    buffer = io.BytesIO()
    assert render_video(picture, buffer, width=width, height=height, fps=10, duration=0.3, seed=seed,
                        motion_strength=strength) == 3  # fmt: skip
    buffer.seek(0)
    assert len(frames_of(buffer)) == 3


def test_float_rounding_never_pushes_the_view_off_the_picture(picture: Image.Image) -> None:
    # Found by Hypothesis: 160x120 into 46x38 made a view 1e-14 px taller than the picture.
    assert render_video(picture, io.BytesIO(), width=46, height=38, fps=10, duration=1.0, seed=0) == 10


def test_render_to_a_file_object(picture: Image.Image) -> None:
    buffer = io.BytesIO()
    frames = render_video(picture, buffer, width=W, height=H, fps=10, duration=0.5)
    assert frames == 5
    assert buffer.getvalue()[4:8] == b"ftyp"
    buffer.seek(0)
    assert len(frames_of(buffer)) == 5


def test_image_bytes_and_pillow_image_render_the_same(picture: Image.Image, picture_png: bytes, tmp_path: Path) -> None:
    assert frames_of(render(picture, tmp_path / "a.mp4")) == frames_of(render(picture_png, tmp_path / "b.mp4"))


def test_same_seed_same_frames(picture: Image.Image, tmp_path: Path) -> None:
    first = frames_of(render(picture, tmp_path / "a.mp4", seed=42, motion_strength=0.8))
    second = frames_of(render(picture, tmp_path / "b.mp4", seed=42, motion_strength=0.8))
    assert first == second and len(first) == 10


@settings(max_examples=min(settings().max_examples, 5))
@given(seeds=st.lists(st.integers(0, 2**63 - 1), min_size=2, max_size=2, unique=True))
def test_different_seed_different_frames(
    picture: Image.Image, tmp_path_factory: pytest.TempPathFactory, seeds: list[int]
) -> None:
    directory = tmp_path_factory.mktemp("seeds")
    first, second = (
        frames_of(render(picture, directory / f"{seed}.mp4", seed=seed, motion_strength=1.0, duration=0.5))
        for seed in seeds
    )
    assert first[-1] != second[-1]  # the camera ends somewhere else


def _difference(a: bytes, b: bytes) -> float:
    return float(np.abs(np.frombuffer(a, np.uint8).astype(int) - np.frombuffer(b, np.uint8).astype(int)).mean())


def test_motion_strength_scales_the_camera_move(picture: Image.Image, tmp_path: Path) -> None:
    still = frames_of(render(picture, tmp_path / "still.mp4", motion_strength=0.0))
    moving = frames_of(render(picture, tmp_path / "moving.mp4", motion_strength=1.0))
    noise = _difference(still[0], still[-1])  # only compression noise
    assert noise < 3.0
    assert _difference(moving[0], moving[-1]) > 4 * max(noise, 1.0)


def test_render_stops_when_asked(picture: Image.Image, tmp_path: Path) -> None:
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(RenderStopped, match="after 3 of 10 frames"):
        render(picture, tmp_path / "stopped.mp4", should_stop=should_stop)


@pytest.mark.parametrize("width, height", [(63, 48), (64, 47)])
def test_odd_sizes_are_refused(picture: Image.Image, tmp_path: Path, width: int, height: int) -> None:
    with pytest.raises(ValueError, match="even"):
        render(picture, tmp_path / "odd.mp4", width=width, height=height)


def test_a_tiny_picture_fills_a_larger_frame(tmp_path: Path) -> None:
    probe = probe_video(render(Image.new("RGB", (4, 4), (200, 10, 10)), tmp_path / "big.mp4", width=320, height=180))
    assert probe.size == "320*180"


# --- what is not a (whole) video ------------------------------------------------------------------


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\x00\x01" * 8000)
    return path


@pytest.mark.parametrize(
    "name, make",
    [
        ("empty.mp4", lambda p: p.write_bytes(b"")),
        ("text.mp4", lambda p: p.write_text("this is not a video\n" * 50)),
        ("noise.mp4", lambda p: p.write_bytes(hashlib.sha512(b"x").digest() * 100)),
        ("picture.png", lambda p: Image.new("RGB", (32, 32)).save(p, "PNG")),
        ("sound.wav", _wav),
    ],
)
def test_non_videos_are_integrity_errors(tmp_path: Path, name: str, make: Any) -> None:
    path = tmp_path / name
    make(path)
    with pytest.raises(IntegrityError) as info:
        probe_video(path)
    assert str(path) in str(info.value)


def test_a_missing_file_is_an_integrity_error(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError):
        probe_video(tmp_path / "gone.mp4")


def _top_level_boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    boxes, at = {}, 0
    while at < len(data):
        size = int.from_bytes(data[at : at + 4], "big")
        boxes[data[at + 4 : at + 8]] = (at, size)
        at += size
    return boxes


@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_videos_cut_before_their_index_ends_are_integrity_errors(
    clip: Path, tmp_path_factory: pytest.TempPathFactory, fraction: float
) -> None:
    data = clip.read_bytes()
    moov_at, _ = _top_level_boxes(data)[b"moov"]
    assert moov_at > 0  # rendered files put the index last
    path = tmp_path_factory.mktemp("cut") / "cut.mp4"
    path.write_bytes(data[: math.floor((moov_at + 64) * fraction)])
    with pytest.raises(IntegrityError):
        probe_video(path)


@pytest.mark.parametrize("layout", ["index last", "index first"])
@given(data=st.data())
def test_a_cut_video_is_never_measured_as_a_shorter_whole_one(
    clip: Path, tmp_path_factory: pytest.TempPathFactory, layout: str, data: st.DataObject
) -> None:
    directory = tmp_path_factory.mktemp("cut")
    source = clip if layout == "index last" else faststart_copy(clip, directory / "fast.mp4")
    content = source.read_bytes()
    cut = data.draw(st.integers(0, len(content) - 1), label="cut")
    path = directory / "cut.mp4"
    path.write_bytes(content[:cut])
    try:
        probe = probe_video(path, decode=True)
    except IntegrityError:
        return
    # Only the trailing metadata was lost: every frame is still there.
    assert (probe.frames, probe.size) == (12, f"{W}*{H}")


def test_truncated_faststart_video_is_caught_when_decoding(clip: Path, tmp_path: Path) -> None:
    whole = faststart_copy(clip, tmp_path / "fast.mp4")
    assert probe_video(whole, decode=True).frames == 12
    with av.open(str(whole)) as container:
        ends = [packet.pos + packet.size for packet in container.demux(video=0) if packet.pos is not None]
    data = whole.read_bytes()
    for end in ends[:-1]:  # cut exactly between two frames: every remaining packet is whole
        path = tmp_path / f"cut-{end}.mp4"
        path.write_bytes(data[:end])
        with pytest.raises(IntegrityError, match="truncated"):
            probe_video(path, decode=True)


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_the_audio_track_is_a_quiet_seeded_tone(picture: Image.Image, seed: int) -> None:
    import itertools
    from array import array

    buffer = io.BytesIO()
    render_video(picture, buffer, width=W, height=H, fps=10, duration=1.0, seed=seed, audio=True)
    buffer.seek(0)
    samples = array("f")
    with av.open(buffer) as container:
        for frame in container.decode(audio=0):
            samples.frombytes(bytes(frame.planes[0])[: frame.samples * 4])
    steady = samples[4096:-4096]  # away from the encoder's priming and tail
    rms = math.sqrt(sum(value * value for value in steady) / len(steady))
    assert rms == pytest.approx(0.1 / math.sqrt(2), rel=0.05)
    crossings = sum(1 for a, b in itertools.pairwise(steady) if (a < 0) != (b < 0))
    assert crossings / 2 / (len(steady) / 48000) == pytest.approx(220 + (seed % 12) * 20, rel=0.02)


def test_rendering_and_probing_need_no_numpy(tmp_path: Path) -> None:
    # numpy is not a core dependency: a render with audio, and a probe, must not import it.
    import subprocess
    import sys

    code = (
        "import sys; from PIL import Image; from reelgen.render import render_video; "
        "from reelgen.probe import probe_video; "
        f"render_video(Image.new('RGB', (32, 32)), {str(tmp_path / 'a.mp4')!r}, width=32, height=32, "
        "fps=10, duration=0.5, audio=True); "
        f"assert probe_video({str(tmp_path / 'a.mp4')!r}, decode=True).has_audio; "
        "print('numpy' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert run.stdout.strip() == "False"


def test_a_large_picture_decoded_by_ffmpeg_matches_pillow(picture: Image.Image) -> None:
    from reelgen.render import _decode_reduced

    big = picture.resize((800, 600), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    reduced = _decode_reduced(buffer.getvalue(), (200, 150))
    assert reduced is not None and (reduced.mode, reduced.size) == ("RGB", (200, 150))
    expected = big.resize((200, 150), Image.Resampling.BOX)
    assert _difference(reduced.tobytes(), expected.tobytes()) < 2.0
    assert _decode_reduced(b"not a picture at all", (10, 10)) is None
