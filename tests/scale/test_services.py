"""The test services themselves: a private redis-server, and a clear failure (never a skip) without one."""

from __future__ import annotations

import pytest
import redis

from tests.helpers.services import start_redis


def test_the_redis_fixture_is_a_real_server_on_loopback(redis_url):
    client = redis.Redis.from_url(redis_url)
    try:
        assert redis_url.startswith("redis://127.0.0.1:")
        assert client.ping() and client.info("server")["redis_version"]
        assert client.dbsize() == 0  # emptied for each test
    finally:
        client.close()


def test_a_missing_redis_server_fails_with_the_install_command(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y redis-server"):
        start_redis()
