"""Storage and the SQLite cache: atomic writes, caps, MP4 checks, concurrent writers."""

from __future__ import annotations

import concurrent.futures
import hashlib
import shutil
from pathlib import Path

import fsspec
import pytest

import reelgen
from reelgen.builtins.storage import store_local, store_remote
from reelgen.download import VideoSource, download_video
from reelgen.errors import IntegrityError
from reelgen.store import open_store
from tests.helpers.server import file_server


def _source(tmp_path: Path, body: bytes, key: str = "k" * 64) -> VideoSource:
    path = tmp_path / "spool.mp4"
    path.write_bytes(body)
    return VideoSource(path=path, sha256=hashlib.sha256(body).hexdigest(), bytes=len(body), key=key)


def test_local_store_is_atomic_when_the_copy_fails(tmp_path, mp4_bytes, monkeypatch):
    root = tmp_path / "videos"
    source = _source(tmp_path, mp4_bytes)

    def broken_copy(src, dst, length=0):
        dst.write(src.read(100))
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copyfileobj", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        store_local(root, "v.mp4", source)
    assert list(root.iterdir()) == []


def test_a_failed_rewrite_keeps_the_previous_good_file(tmp_path, mp4_bytes, monkeypatch):
    root = tmp_path / "videos"
    store_local(root, "v.mp4", _source(tmp_path, mp4_bytes))
    monkeypatch.setattr(shutil, "copyfileobj", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        store_local(root, "v.mp4", _source(tmp_path, mp4_bytes))
    assert (root / "v.mp4").read_bytes() == mp4_bytes and len(list(root.iterdir())) == 1


def _store_in_process(args: tuple[str, str, bytes]) -> str:
    root, spool, body = args
    path = Path(spool)
    path.write_bytes(body)
    source = VideoSource(path=path, sha256=hashlib.sha256(body).hexdigest(), bytes=len(body), key="same")
    return store_local(Path(root), "same.mp4", source)


def test_concurrent_writers_in_several_processes_leave_one_whole_file(tmp_path, mp4_bytes):
    root = tmp_path / "videos"
    jobs = [(str(root), str(tmp_path / f"spool-{i}.mp4"), mp4_bytes) for i in range(8)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=4) as pool:
        urls = set(pool.map(_store_in_process, jobs))
    assert len(urls) == 1
    assert [p.name for p in root.iterdir()] == ["same.mp4"]
    assert (root / "same.mp4").read_bytes() == mp4_bytes


def test_remote_store_through_fsspec_moves_into_place(tmp_path, mp4_bytes):
    url = store_remote("memory://bucket/videos", "v.mp4", _source(tmp_path, mp4_bytes), {})
    fs = fsspec.filesystem("memory")
    assert url == "memory:///bucket/videos/v.mp4"
    assert fs.cat_file("/bucket/videos/v.mp4") == mp4_bytes
    assert [p for p in fs.ls("/bucket/videos", detail=False) if p.endswith(".tmp")] == []


def test_download_rejects_a_body_that_is_not_an_mp4(tmp_path):
    with file_server() as server:
        url = server.add("/page", b"<html>not a video</html>" * 4, content_type="text/html")
        with pytest.raises(IntegrityError, match="not an MP4"):
            download_video(url, directory=tmp_path / "spool", key="k", max_bytes=10_000)
    assert list((tmp_path / "spool").iterdir()) == []


@pytest.mark.parametrize("declared", [True, False])
def test_download_enforces_the_size_cap_with_or_without_content_length(tmp_path, mp4_bytes, declared):
    with file_server() as server:
        url = server.add("/v.mp4", mp4_bytes, faults=[] if declared else ["no_length"])
        with pytest.raises(IntegrityError, match="cap"):
            download_video(url, directory=tmp_path / "spool", key="k", max_bytes=len(mp4_bytes) // 2)
    assert list((tmp_path / "spool").iterdir()) == []


def test_download_streams_and_hashes(tmp_path, mp4_bytes):
    seen = []
    with file_server() as server:
        source = download_video(
            server.add("/v.mp4", mp4_bytes),
            directory=tmp_path,
            key="k",
            max_bytes=10**9,
            on_progress=lambda got, total: seen.append((got, total)),
        )
    assert source.sha256 == hashlib.sha256(mp4_bytes).hexdigest() and source.bytes == len(mp4_bytes)
    assert seen[-1] == (len(mp4_bytes), len(mp4_bytes))


def _put_in_process(args: tuple[str, int]) -> None:
    url, index = args
    request = reelgen.VideoRequest(prompt=f"video {index}")
    result = reelgen.VideoResult(
        video_url=f"file:///v/{index}.mp4",
        duration=1,
        fps=10,
        seed=index,
        size="64*64",
        provider="fake",
        model="m",
        sha256="0" * 64,
        bytes=1,
    )
    store = open_store(url)
    for _ in range(5):
        store.cache_put(f"key-{index}", request, result)


def test_sqlite_cache_is_safe_across_processes(tmp_path):
    url = f"sqlite:///{tmp_path / 'cache.db'}"
    with concurrent.futures.ProcessPoolExecutor(max_workers=4) as pool:
        list(pool.map(_put_in_process, [(url, i) for i in range(8)]))
    entries = open_store(url).cache_list()
    assert sorted(e.key for e in entries) == sorted(f"key-{i}" for i in range(8))
    assert {e.result.seed for e in entries} == set(range(8))


def test_cache_never_stores_image_bytes_or_secrets(tmp_path):
    image = b"\x89PNG\r\n\x1a\n" + b"secret-pixels" * 10
    request = reelgen.VideoRequest(prompt="p", reference_image=image)
    result = reelgen.VideoResult(
        video_url="file:///v.mp4",
        duration=1,
        fps=10,
        seed=1,
        size="64*64",
        provider="fake",
        model="m",
        sha256="0" * 64,
        bytes=1,
    )
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    store.cache_put("k", request, result)
    raw = (tmp_path / "c.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("c.db-*"))
    assert b"secret-pixels" not in raw
    assert hashlib.sha256(image).hexdigest().encode() in raw
