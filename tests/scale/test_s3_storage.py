"""S3 storage through s3fs against moto's S3 server on 127.0.0.1: the local guarantees hold."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
import s3fs

import reelgen
from reelgen.builtins import storage
from reelgen.builtins.storage import check_storage, is_durable, presign, store_remote, take_name
from reelgen.config import StorageConfig
from reelgen.download import VideoSource
from reelgen.errors import ConfigError
from reelgen.plugins import get_plugin_manager
from tests.helpers.fake_provider import FakeProvider, Script
from tests.helpers.server import file_server


def _source(tmp_path: Path, body: bytes, key: str = "c0ffee" * 10) -> VideoSource:
    path = tmp_path / "spool.mp4"
    path.write_bytes(body)
    return VideoSource(path=path, sha256=hashlib.sha256(body).hexdigest(), bytes=len(body), key=key)


def _fs(s3_server) -> s3fs.S3FileSystem:
    fs = s3fs.S3FileSystem(**s3_server.options)
    fs.invalidate_cache()
    return fs


def _s3_config(config, s3_server, bucket, **changes):
    return config.evolve(storage=StorageConfig(url=f"s3://{bucket}/videos", options=s3_server.options, **changes))


async def test_a_generation_stores_its_video_on_s3_with_a_matching_sha256(config, s3_server, s3_bucket, mp4_bytes):
    config = _s3_config(config, s3_server, s3_bucket)
    request = reelgen.VideoRequest(prompt="a slow pan", duration=1, fps=10, size="64*64")
    with file_server() as server:
        provider = FakeProvider(Script(url=server.add("/v.mp4", mp4_bytes)))
        result = await reelgen.agenerate(request, provider, config=config, use_cache=False)
    assert result.video_url.startswith(f"s3://{s3_bucket}/videos/") and result.video_url.endswith(".mp4")
    stored = _fs(s3_server).cat_file(result.video_url)
    assert hashlib.sha256(stored).hexdigest() == result.sha256 == hashlib.sha256(mp4_bytes).hexdigest()
    assert is_durable(result.video_url)


def test_an_existing_object_is_never_overwritten(tmp_path, s3_server, s3_bucket, mp4_bytes):
    fs = _fs(s3_server)
    fs.pipe_file(f"{s3_bucket}/videos/v.mp4", b"a colleague's video")
    url = store_remote(f"s3://{s3_bucket}/videos", "v.mp4", _source(tmp_path, mp4_bytes), s3_server.options)
    fs.invalidate_cache()
    assert fs.cat_file(f"{s3_bucket}/videos/v.mp4") == b"a colleague's video"
    assert url == f"s3://{s3_bucket}/videos/v-2.mp4" and fs.cat_file(url) == mp4_bytes


def test_the_same_take_uploaded_twice_is_one_object(tmp_path, s3_server, s3_bucket, mp4_bytes):
    first = store_remote(f"s3://{s3_bucket}/videos", "v.mp4", _source(tmp_path, mp4_bytes), s3_server.options)
    again = store_remote(f"s3://{s3_bucket}/videos", "v.mp4", _source(tmp_path, mp4_bytes), s3_server.options)
    assert first == again
    assert _fs(s3_server).ls(f"{s3_bucket}/videos", detail=False) == [f"{s3_bucket}/videos/v.mp4"]


def test_the_server_itself_refuses_a_put_over_an_existing_key(tmp_path, s3_server, s3_bucket):
    # What closes the race between two writers of one name: the conditional put.
    fs = _fs(s3_server)
    fs.pipe_file(f"{s3_bucket}/k.mp4", b"first")
    spool = tmp_path / "x.mp4"
    spool.write_bytes(b"second")
    with pytest.raises(FileExistsError):
        fs.put_file(str(spool), f"{s3_bucket}/k.mp4", mode="create")
    assert fs.cat_file(f"{s3_bucket}/k.mp4") == b"first"


def test_a_large_video_goes_up_in_parts_and_reads_back_whole(tmp_path, s3_server, s3_bucket, monkeypatch):
    monkeypatch.setattr(storage, "_S3_PART", 5 * 1024 * 1024)  # S3's smallest part
    body = b"\0\0\0\x18ftypisom" + bytes(range(256)) * (11 * 4096)  # about 11 MiB: three parts
    url = store_remote(f"s3://{s3_bucket}/big", "v.mp4", _source(tmp_path, body), s3_server.options)
    assert hashlib.sha256(_fs(s3_server).cat_file(url)).hexdigest() == hashlib.sha256(body).hexdigest()
    # A second, different video under the same name goes beside it: the completion is conditional too.
    other = body[:-1] + b"\1"
    second = store_remote(f"s3://{s3_bucket}/big", "v.mp4", _source(tmp_path, other), s3_server.options)
    assert second.endswith("/v-2.mp4") and _fs(s3_server).cat_file(url) == body


def test_a_presigned_url_serves_the_video_over_http(tmp_path, s3_server, s3_bucket, mp4_bytes):
    url = store_remote(f"s3://{s3_bucket}/videos", "v.mp4", _source(tmp_path, mp4_bytes), s3_server.options)
    signed = presign(url, expires=600, options=s3_server.options)
    assert signed.startswith(s3_server.endpoint_url) and "Signature" in signed
    assert httpx.get(signed, timeout=30).content == mp4_bytes


def test_a_sidecar_sits_beside_the_object(config, tmp_path, s3_server, s3_bucket, mp4_bytes):
    config = _s3_config(config, s3_server, s3_bucket, sidecar=True)
    source = _source(tmp_path, mp4_bytes)
    draft = reelgen.VideoResult(
        video_url="https://provider.example/v.mp4",
        duration=1,
        fps=10,
        seed=1,
        size="64*64",
        provider="fake",
        model="m",
        sha256=source.sha256,
        bytes=source.bytes,
    )
    stored = get_plugin_manager().hook.reelgen_store_video(
        request=reelgen.VideoRequest(prompt="on s3"), result=draft, source=source, config=config, job_id="fake:t-1"
    )
    assert stored.video_url == f"s3://{s3_bucket}/videos/{take_name(source.key, 'fake:t-1')}"
    document = json.loads(_fs(s3_server).cat_file(stored.video_url[: -len(".mp4")] + ".json"))
    assert document["request"]["prompt"] == "on s3" and document["result"]["video_url"] == stored.video_url


def test_a_missing_bucket_is_refused_before_paying(config, s3_server):
    storage._checked_remote.clear()
    config = _s3_config(config, s3_server, "no-such-bucket-here")
    with pytest.raises(ConfigError, match="cannot write there"):
        get_plugin_manager().hook.reelgen_check_storage(config=config)


def test_a_writable_bucket_passes_the_check_and_keeps_no_probe(s3_server, s3_bucket):
    storage._checked_remote.clear()
    check_storage(f"s3://{s3_bucket}/videos", s3_server.options)
    assert _fs(s3_server).find(s3_bucket) == []
