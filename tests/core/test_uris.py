"""reelgen.uris: one `file://` parser for every place that reads a local URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelgen.uris import file_url_to_path, is_file_url, path_to_file_url, strip_query

# File-name characters: any printable Unicode (spaces, %, #, ?, accents, CJK, emoji), no "/" or NUL.
_names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\x00"), min_size=1, max_size=12
).filter(lambda name: name not in (".", ".."))
_paths = st.lists(_names, min_size=1, max_size=4).map(lambda parts: Path("/", *parts))


@given(path=_paths)
def test_a_path_round_trips_through_its_file_url(path: Path) -> None:
    url = path_to_file_url(path)
    assert url.startswith("file:///") and " " not in url
    assert file_url_to_path(url) == path


@given(path=_paths)
def test_localhost_and_an_empty_host_are_the_same_place(path: Path) -> None:
    url = path_to_file_url(path)
    localhost = "file://localhost" + url[len("file://") :]
    assert file_url_to_path(localhost) == file_url_to_path(url.upper()[:7] + url[7:]) == path


@given(path=_paths, query=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20))
def test_a_query_or_fragment_is_not_part_of_the_path(path: Path, query: str) -> None:
    url = path_to_file_url(path)
    assert file_url_to_path(f"{url}?{query}") == path
    assert file_url_to_path(f"{url}#{query}") == path
    assert strip_query(f"{url}?{query}") == url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///tmp/a%20b.png", "/tmp/a b.png"),
        ("file://localhost/tmp/a%20b.png", "/tmp/a b.png"),
        ("FILE://LOCALHOST/tmp/x", "/tmp/x"),
        ("file:///tmp/caf%C3%A9/%E7%8C%AB.png", "/tmp/café/猫.png"),
        ("file:///tmp/100%25.png", "/tmp/100%.png"),
        ("file://videos/out", "videos/out"),  # a hand-written relative path, never a remote host
    ],
)
def test_examples(url: str, expected: str) -> None:
    assert file_url_to_path(url) == Path(expected)


def test_a_leading_tilde_is_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert file_url_to_path("file://~/videos") == tmp_path / "videos"
    assert path_to_file_url("~/x y") == (tmp_path / "x y").as_uri()


def test_relative_paths_become_absolute_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert file_url_to_path(path_to_file_url("a b/c")) == Path(os.getcwd(), "a b", "c")


@pytest.mark.parametrize("url", ["http://x/y", "/tmp/x", "file:/tmp/x", "s3://b/k", "data:,x"])
def test_other_urls_are_refused(url: str) -> None:
    assert not is_file_url(url)
    with pytest.raises(ValueError, match="not a file:// URL"):
        file_url_to_path(url)


def test_strip_query_keeps_urls_without_one() -> None:
    assert strip_query("https://oss/x.mp4?Signature=secret&Expires=1") == "https://oss/x.mp4"
    assert strip_query("https://oss/x.mp4") == "https://oss/x.mp4"


def test_every_reader_of_file_urls_agrees(tmp_path: Path) -> None:
    """The five places that read `file://` URLs read `localhost`, `%20` and UTF-8 alike."""
    import hashlib
    import io

    from PIL import Image

    from reelgen.builtins.cache import video_exists
    from reelgen.builtins.storage import _local_root
    from reelgen.contract import VideoResult
    from reelgen.download import download_video
    from reelgen.images import read_image
    from reelgen_bailian_wan.mapping import _local_audio_path

    folder = tmp_path / "a folder" / "café"
    folder.mkdir(parents=True)
    picture = folder / "first frame.png"
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24)).save(buffer, "PNG")
    picture.write_bytes(buffer.getvalue())
    video = folder / "take 1.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))

    def localhost(path: Path) -> str:
        return "file://localhost" + path_to_file_url(path)[len("file://") :]

    assert read_image(localhost(picture)).width == 32
    source = download_video(localhost(video), directory=tmp_path / "spool", key="k", max_bytes=10**6)
    assert source.path.read_bytes() == video.read_bytes()
    assert _local_root(localhost(folder)) == folder.resolve()
    assert _local_audio_path(localhost(folder / "voice over.wav")) == folder / "voice over.wav"
    data = video.read_bytes()
    result = VideoResult(
        video_url=localhost(video),
        duration=1.0,
        fps=30.0,
        seed=None,
        size="32*24",
        provider="preview",
        model="m",
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
    )
    assert video_exists(result)
