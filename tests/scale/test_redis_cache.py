"""The Redis result cache: shared hits, dead files are misses, nothing secret, keys namespaced."""

from __future__ import annotations

import hashlib
from pathlib import Path

import redis

import reelgen
from reelgen.config import CacheConfig, ClusterConfig, StorageConfig
from reelgen.plugins import get_plugin_manager


def _stored(tmp_path: Path, body: bytes) -> reelgen.VideoResult:
    path = tmp_path / "video.mp4"
    path.write_bytes(body)
    return reelgen.VideoResult(
        video_url=path.as_uri(),
        duration=1,
        fps=10,
        seed=1,
        size="64*64",
        provider="fake",
        model="m",
        sha256=hashlib.sha256(body).hexdigest(),
        bytes=len(body),
    )


def _with_redis(config, redis_url, **cluster):
    # The SQLite cache in a file of its own that no other process sees: the hit asked of a
    # fresh config below can only come from Redis.
    return config.evolve(cluster=ClusterConfig(redis=redis_url, **cluster))


def test_a_result_put_by_one_process_is_a_hit_for_another(config, redis_url, tmp_path, mp4_bytes):
    pm = get_plugin_manager()
    config = _with_redis(config, redis_url)
    request = reelgen.VideoRequest(prompt="shared")
    result = _stored(tmp_path, mp4_bytes)
    assert pm.hook.reelgen_cache_get(key="k1", request=request, config=config) is None
    pm.hook.reelgen_cache_put(key="k1", request=request, result=result, config=config)
    # Another machine: its own (empty) SQLite cache, the same Redis.
    elsewhere = config.evolve(cache=CacheConfig(url=f"sqlite:///{tmp_path / 'elsewhere.db'}"))
    hit = pm.hook.reelgen_cache_get(key="k1", request=request, config=elsewhere)
    assert hit is not None and hit.cached and hit.video_url == result.video_url
    # And `cache.url = none` still means no cache at all.
    off = config.evolve(cache=CacheConfig(url="none"))
    assert pm.hook.reelgen_cache_get(key="k1", request=request, config=off) is None


def test_a_hit_whose_video_is_gone_or_changed_is_a_miss_and_is_dropped(config, redis_url, tmp_path, mp4_bytes):
    pm = get_plugin_manager()
    config = _with_redis(config, redis_url)
    request = reelgen.VideoRequest(prompt="gone")
    result = _stored(tmp_path, mp4_bytes)
    pm.hook.reelgen_cache_put(key="k2", request=request, result=result, config=config)
    (tmp_path / "video.mp4").write_bytes(mp4_bytes[:-1] + b"\0")  # same size, other content
    assert pm.hook.reelgen_cache_get(key="k2", request=request, config=config) is None
    assert redis.Redis.from_url(redis_url).exists("reelgen:cache:k2") == 0


def test_cache_entries_hold_no_image_bytes_and_live_under_the_namespace(config, redis_url, tmp_path, mp4_bytes):
    pm = get_plugin_manager()
    config = _with_redis(config, redis_url, namespace="studio")
    image = b"\x89PNG\r\n\x1a\n" + b"secret-pixels" * 10
    request = reelgen.VideoRequest(prompt="p", reference_image=image)
    pm.hook.reelgen_cache_put(key="k3", request=request, result=_stored(tmp_path, mp4_bytes), config=config)
    client = redis.Redis.from_url(redis_url)
    keys = client.keys("*")
    assert keys and all(key.startswith(b"studio:cache:") for key in keys)
    dump = b"".join(client.dump(key) or b"" for key in keys)
    assert b"secret-pixels" not in dump
    assert hashlib.sha256(image).hexdigest().encode() in client.get("studio:cache:k3")


def test_without_redis_the_plugin_passes(config, tmp_path, mp4_bytes):
    # The built-in SQLite cache answers alone: the plugin returns None for every hook.
    from reelgen.cluster import plugin

    request = reelgen.VideoRequest(prompt="local")
    assert plugin.reelgen_cache_get(key="k", request=request, config=config) is None
    assert plugin.reelgen_governor(config=config) is None
    assert plugin.reelgen_journal(config=config) is None
    assert config.storage == StorageConfig(url=config.storage.url)


def test_cache_list_and_clear_show_and_forget_the_shared_entries(config, redis_url, tmp_path, mp4_bytes, monkeypatch):
    import json as json_

    from click.testing import CliRunner

    from reelgen.cli import cli as main

    pm = get_plugin_manager()
    shared = _with_redis(config, redis_url)
    result = _stored(tmp_path, mp4_bytes)
    pm.hook.reelgen_cache_put(
        key="k1", request=reelgen.VideoRequest(prompt="made on machine one"), result=result, config=shared
    )
    # This machine's own SQLite cache is elsewhere and empty: what is listed is Redis's.
    monkeypatch.setenv("REELGEN_CACHE_URL", f"sqlite:///{tmp_path / 'this-machine.db'}")
    monkeypatch.setenv("REELGEN_REDIS_URL", redis_url)
    runner = CliRunner()
    listed = runner.invoke(main, ["cache", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json_.loads(listed.output)
    assert row["key"] == "k1" and row["prompt"] == "made on machine one"
    cleared = runner.invoke(main, ["cache", "clear", "--yes"])
    assert cleared.exit_code == 0, cleared.output
    from reelgen.cluster.cache import cache_get

    assert cache_get(redis_url, "reelgen", "k1") is None
    assert runner.invoke(main, ["cache", "list"]).output.strip() == "the cache is empty"
