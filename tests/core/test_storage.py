"""Storage and the SQLite cache: one file per take, never overwritten, sha256 that matches,
atomic writes, caps, MP4 checks, checks before paying, concurrent writers."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import attrs
import av
import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import reelgen
from reelgen._store import open_store
from reelgen.builtins import storage
from reelgen.builtins.storage import check_storage, is_durable, store_local, store_remote, take_name
from reelgen.config import StorageConfig
from reelgen.download import VideoSource, download_video
from reelgen.errors import ConfigError, IntegrityError
from reelgen.images import image_key
from reelgen.plugins import get_plugin_manager
from tests.helpers.fake_provider import FakeProvider, Script
from tests.helpers.server import file_server


def _source(tmp_path: Path, body: bytes, key: str = "k" * 64, name: str = "spool.mp4") -> VideoSource:
    path = tmp_path / name
    path.write_bytes(body)
    return VideoSource(path=path, sha256=hashlib.sha256(body).hexdigest(), bytes=len(body), key=key)


def _path(url: str) -> Path:
    return Path(unquote(urlparse(url).path))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _videos(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


@pytest.fixture(scope="module")
def other_mp4() -> bytes:
    """A second real MP4, different from `mp4_bytes` (another take of the same request)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame(64, 64, "rgb24")
            frame.planes[0].update(bytes([200, 40 + index, 90]) * (64 * 64))
            container.mux(stream.encode(frame.reformat(format="yuv420p")))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def _result(**changes: object) -> reelgen.VideoResult:
    fields: dict[str, object] = {
        "video_url": "https://provider.example/v.mp4",
        "duration": 1,
        "fps": 10,
        "seed": 1,
        "size": "64*64",
        "provider": "fake",
        "model": "m",
        "sha256": "0" * 64,
        "bytes": 1,
    }
    fields.update(changes)
    return reelgen.VideoResult(**fields)  # type: ignore[arg-type]


# -- one file per take, never overwritten ------------------------------------------


async def test_two_no_cache_takes_of_one_seedless_request_keep_two_files(config, mp4_bytes, other_mp4):
    request = reelgen.VideoRequest(prompt="a slow pan", duration=1, fps=10, size="64*64")
    with file_server() as server:
        url = server.add("/v.mp4", mp4_bytes)
        first = await reelgen.agenerate(
            request, FakeProvider(Script(url=url, seed=None)), config=config, use_cache=False
        )
        server.add("/v.mp4", other_mp4)  # the provider's second take is another video
        second = await reelgen.agenerate(
            request, FakeProvider(Script(url=url, seed=None)), config=config, use_cache=False
        )
    assert first.video_url != second.video_url
    assert _sha(_path(first.video_url)) == first.sha256 == hashlib.sha256(mp4_bytes).hexdigest()
    assert _sha(_path(second.video_url)) == second.sha256 == hashlib.sha256(other_mp4).hexdigest()
    assert len(_videos(Path(config.storage.url))) == 2


def test_the_file_name_is_the_key_prefix_and_the_job_id():
    key = "3fa9c2d1e0b4a7f6" + "0" * 48
    assert take_name(key, "bailian_wan:8c1f-22.x") == "3fa9c2d1e0b4a7f6-bailian_wan-8c1f-22.x.mp4"
    # No job id: a random take id, so two takes still differ.
    assert take_name(key).startswith("3fa9c2d1e0b4a7f6-take-") and take_name(key) != take_name(key)
    # Whatever the key holds, the name has no path separators.
    assert "/" not in take_name("../../etc/passwd", "x:../y")


def test_a_user_file_at_the_target_name_is_never_overwritten(tmp_path, mp4_bytes):
    root = tmp_path / "videos"
    root.mkdir()
    (root / "v.mp4").write_bytes(b"my own holiday video")
    url = store_local(root, "v.mp4", _source(tmp_path, mp4_bytes))
    assert (root / "v.mp4").read_bytes() == b"my own holiday video"
    assert _path(url) == root / "v-2.mp4" and (root / "v-2.mp4").read_bytes() == mp4_bytes


async def test_the_hook_never_overwrites_a_user_file_at_its_name(config, tmp_path, mp4_bytes):
    root = Path(config.storage.url)
    root.mkdir(parents=True)
    source = _source(tmp_path, mp4_bytes)
    taken = root / take_name(source.key, "fake:task-1")
    taken.write_bytes(b"not yours")
    stored = get_plugin_manager().hook.reelgen_store_video(
        request=reelgen.VideoRequest(prompt="p"), result=_result(), source=source, config=config, job_id="fake:task-1"
    )
    assert taken.read_bytes() == b"not yours"
    assert _sha(_path(stored.video_url)) == stored.sha256 == source.sha256


def test_the_same_take_delivered_twice_is_one_file(tmp_path, mp4_bytes):
    root = tmp_path / "videos"
    first = store_local(root, "v.mp4", _source(tmp_path, mp4_bytes))
    again = store_local(root, "v.mp4", _source(tmp_path, mp4_bytes, name="spool-2.mp4"))
    assert first == again and _videos(root) == ["v.mp4"]


def test_a_different_video_under_a_used_name_gets_the_next_name(tmp_path, mp4_bytes, other_mp4):
    root = tmp_path / "videos"
    first = store_local(root, "v.mp4", _source(tmp_path, mp4_bytes))
    second = store_local(root, "v.mp4", _source(tmp_path, other_mp4, name="spool-2.mp4"))
    assert _path(first).read_bytes() == mp4_bytes and _path(second).read_bytes() == other_mp4
    assert _videos(root) == ["v-2.mp4", "v.mp4"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_stored_files_follow_the_umask(tmp_path, mp4_bytes, umask):
    old = os.umask(umask)
    try:
        url = store_local(tmp_path / "videos", "v.mp4", _source(tmp_path, mp4_bytes))
    finally:
        os.umask(old)
    assert stat.S_IMODE(_path(url).stat().st_mode) == 0o666 & ~umask


class _BrokenReader(io.RawIOBase):
    """A spool file whose disk fails after the first 100 bytes."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if self.sent >= 100:
            raise OSError("I/O error")
        chunk = self.body[self.sent : self.sent + 100]
        buffer[: len(chunk)] = chunk
        self.sent += len(chunk)
        return len(chunk)


@attrs.frozen(kw_only=True)
class _FailingSource(VideoSource):
    def open(self):  # type: ignore[no-untyped-def]
        return io.BufferedReader(_BrokenReader(self.path.read_bytes()))


def test_a_copy_that_fails_midway_leaves_nothing_and_keeps_the_previous_file(tmp_path, mp4_bytes):
    root = tmp_path / "videos"
    good = store_local(root, "v.mp4", _source(tmp_path, mp4_bytes))
    body = mp4_bytes
    failing = _FailingSource(
        path=tmp_path / "spool.mp4", sha256=hashlib.sha256(body).hexdigest(), bytes=len(body), key="k"
    )
    with pytest.raises(OSError, match="I/O error"):
        store_local(root, "w.mp4", failing)
    assert os.listdir(root) == ["v.mp4"] and _path(good).read_bytes() == mp4_bytes


def test_a_spool_file_that_changed_is_refused(tmp_path, mp4_bytes):
    source = _source(tmp_path, mp4_bytes)
    source.path.write_bytes(mp4_bytes[:-1] + b"\0")
    with pytest.raises(IntegrityError, match="changed"):
        store_local(tmp_path / "videos", "v.mp4", source)
    assert os.listdir(tmp_path / "videos") == []


def _store_in_process(args: tuple[str, str, bytes]) -> str:
    root, spool, body = args
    path = Path(spool)
    path.write_bytes(body)
    source = VideoSource(path=path, sha256=hashlib.sha256(body).hexdigest(), bytes=len(body), key="same")
    return store_local(Path(root), "same.mp4", source)


def test_concurrent_writers_of_one_take_in_several_processes_leave_one_whole_file(tmp_path, mp4_bytes):
    root = tmp_path / "videos"
    jobs = [(str(root), str(tmp_path / f"spool-{i}.mp4"), mp4_bytes) for i in range(8)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=4) as pool:
        urls = set(pool.map(_store_in_process, jobs))
    assert len(urls) == 1
    assert os.listdir(root) == ["same.mp4"]
    assert (root / "same.mp4").read_bytes() == mp4_bytes


def _store_variant_in_process(args: tuple[str, str, bytes]) -> str:
    root, spool, body = args
    path = Path(spool)
    path.write_bytes(body)
    source = VideoSource(path=path, sha256=hashlib.sha256(body).hexdigest(), bytes=len(body), key="same")
    return store_local(Path(root), "same.mp4", source)


def test_concurrent_writers_of_different_videos_under_one_name_never_lose_one(tmp_path, mp4_bytes):
    root = tmp_path / "videos"
    bodies = [mp4_bytes + bytes([i]) * 16 for i in range(6)]
    jobs = [(str(root), str(tmp_path / f"spool-{i}.mp4"), body) for i, body in enumerate(bodies)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=3) as pool:
        urls = list(pool.map(_store_variant_in_process, jobs))
    assert len(set(urls)) == 6
    for url, body in zip(urls, bodies, strict=True):
        assert _path(url).read_bytes() == body


# -- remote (fsspec) ---------------------------------------------------------------


def test_remote_store_through_fsspec_moves_into_place(tmp_path, mp4_bytes):
    url = store_remote("memory://bucket/videos", "v.mp4", _source(tmp_path, mp4_bytes), {})
    fs = fsspec.filesystem("memory")
    assert url == "memory:///bucket/videos/v.mp4"
    assert fs.cat_file("/bucket/videos/v.mp4") == mp4_bytes
    assert [p for p in fs.ls("/bucket/videos", detail=False) if p.endswith(".part")] == []


def test_remote_store_never_overwrites_an_existing_object(tmp_path, mp4_bytes):
    fs = fsspec.filesystem("memory")
    fs.pipe_file("/keep/videos/v.mp4", b"someone else's")
    url = store_remote("memory://keep/videos", "v.mp4", _source(tmp_path, mp4_bytes), {})
    assert fs.cat_file("/keep/videos/v.mp4") == b"someone else's"
    assert url == "memory:///keep/videos/v-2.mp4" and fs.cat_file("/keep/videos/v-2.mp4") == mp4_bytes


class _DroppingFileSystem(MemoryFileSystem):
    """A real fsspec filesystem whose uploads lose their last byte (a broken gateway)."""

    protocol = "droplast"

    def put_file(self, lpath, rpath, callback=None, mode="overwrite", **kwargs):  # type: ignore[no-untyped-def, override]
        self.pipe_file(rpath, Path(lpath).read_bytes()[:-1])


def test_an_upload_that_does_not_read_back_the_same_is_refused_and_removed(tmp_path, mp4_bytes):
    fsspec.register_implementation("droplast", _DroppingFileSystem, clobber=True)
    with pytest.raises(IntegrityError, match="does not match"):
        store_remote("droplast://bad/videos", "v.mp4", _source(tmp_path, mp4_bytes), {})
    assert fsspec.filesystem("droplast").find("/bad") == []


# -- sidecar -----------------------------------------------------------------------


def test_a_sidecar_holds_the_request_and_the_result(config, tmp_path, mp4_bytes):
    config = config.evolve(storage=attrs.evolve(config.storage, sidecar=True))
    image = b"\x89PNG\r\n\x1a\n" + b"pixels" * 10
    request = reelgen.VideoRequest(prompt="a lighthouse", reference_image=image)
    source = _source(tmp_path, mp4_bytes)
    stored = get_plugin_manager().hook.reelgen_store_video(
        request=request, result=_result(), source=source, config=config, job_id="fake:task-9"
    )
    sidecar = _path(stored.video_url).with_suffix(".json")
    document = json.loads(sidecar.read_text())
    assert document["job_id"] == "fake:task-9"
    assert document["request"]["prompt"] == "a lighthouse"
    assert document["request"]["reference_image"] == image_key(image) and "pixels" not in sidecar.read_text()
    assert document["result"]["sha256"] == source.sha256 == _sha(_path(stored.video_url))
    assert document["result"]["video_url"] == stored.video_url


def test_no_sidecar_unless_asked(config, tmp_path, mp4_bytes):
    stored = get_plugin_manager().hook.reelgen_store_video(
        request=reelgen.VideoRequest(prompt="p"),
        result=_result(),
        source=_source(tmp_path, mp4_bytes),
        config=config,
        job_id="fake:t",
    )
    assert _videos(_path(stored.video_url).parent) == [_path(stored.video_url).name]


# -- checks before paying -----------------------------------------------------------


def test_a_folder_that_cannot_be_created_is_refused_before_paying(config, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = config.evolve(storage=StorageConfig(url=str(blocker / "videos")))
    with pytest.raises(ConfigError, match="cannot be created"):
        get_plugin_manager().hook.reelgen_check_storage(config=config)


def test_a_missing_folder_that_can_be_created_is_fine(tmp_path):
    check_storage(str(tmp_path / "new" / "videos"))
    assert (tmp_path / "new" / "videos").is_dir()


_CHECK = (
    "import sys\n"
    "from reelgen.builtins.storage import check_storage\n"
    "from reelgen.errors import ConfigError\n"
    "try:\n"
    "    check_storage(sys.argv[1])\n"
    "except ConfigError as exc:\n"
    "    print('refused:', exc)\n"
    "else:\n"
    "    print('accepted')\n"
)


def test_a_read_only_folder_is_refused_before_paying():
    folder = Path(tempfile.mkdtemp(prefix="reelgen-ro-"))
    try:
        if os.geteuid() == 0:
            # root writes through permission bits: use a really read-only filesystem, mounted
            # in a private mount namespace so nothing outside this command sees it.
            script = f'mount -t tmpfs -o ro tmpfs "$1" && exec "{sys.executable}" -c "$2" "$1"'
            command = ["unshare", "-m", "sh", "-c", script, "sh", str(folder), _CHECK]
        else:
            folder.chmod(0o555)
            command = [sys.executable, "-c", _CHECK, str(folder)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)
    assert done.stdout.startswith("refused:"), done.stdout + done.stderr
    assert "cannot write" in done.stdout


@pytest.mark.parametrize("url", ["none", "off", "", "  FALSE "])
def test_storage_cannot_be_switched_off(url):
    with pytest.raises(ConfigError, match="cannot be switched off"):
        check_storage(url)


def test_a_protocol_that_is_not_installed_is_refused_with_the_install_command():
    with pytest.raises(ConfigError, match=r"gcs:// is not installed"):
        check_storage("gcs://bucket/videos")


def test_an_unknown_protocol_is_refused():
    with pytest.raises(ConfigError, match="knows no protocol"):
        check_storage("nosuchfs://bucket/videos")


def test_a_writable_remote_location_passes_and_leaves_no_probe():
    check_storage("memory://checked/videos")
    assert fsspec.filesystem("memory").find("/checked") == []


def test_memory_storage_is_not_durable():
    assert not is_durable("memory://bucket/videos")
    assert is_durable("output/videos") and is_durable("file:///tmp/v") and is_durable("s3://bucket/prefix")


def test_every_remote_url_is_checked_once_per_process():
    storage._checked_remote.clear()
    check_storage("memory://once/videos")
    assert any(key.startswith("memory://once/videos") for key in storage._checked_remote)


# -- download ----------------------------------------------------------------------


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


# -- the SQLite cache ---------------------------------------------------------------


def _put_in_process(args: tuple[str, int]) -> None:
    url, index = args
    request = reelgen.VideoRequest(prompt=f"video {index}")
    result = _result(video_url=f"file:///v/{index}.mp4", seed=index)
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
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    store.cache_put("k", request, _result(video_url="file:///v.mp4"))
    raw = (tmp_path / "c.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("c.db-*"))
    assert b"secret-pixels" not in raw
    assert hashlib.sha256(image).hexdigest().encode() in raw
