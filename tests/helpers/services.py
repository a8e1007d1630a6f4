"""Real services for the tests: a `redis-server` and moto's S3 server, each on 127.0.0.1.

Both listen on a random free port and keep their data in a temp dir; nothing outside this
machine is contacted. A test that needs Redis never skips: a missing `redis-server` fails
the test with the command that installs it (`make test` runs `.ci/services.sh`, which
installs it when run as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

__all__ = ["RedisServer", "S3Server", "redis_server", "redis_url", "s3_bucket", "s3_server", "start_redis"]

INSTALL_REDIS = "apt-get update && apt-get install -y redis-server   (or, as root: bash .ci/services.sh)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.define
class RedisServer:
    """A `redis-server` process on 127.0.0.1 that this test session started."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(*, attempts: int = 5) -> RedisServer:
    """Start a private `redis-server` (no persistence, loopback only); fail with the fix if absent."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(f"redis-server is not installed; the Redis tests need it. Install it: {INSTALL_REDIS}")
    problem = ""
    for _ in range(attempts):
        port = free_port()
        directory = Path(tempfile.mkdtemp(prefix="reelgen-redis-"))
        process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            if _ping(port):
                return RedisServer(process=process, port=port, directory=directory)
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        problem = (process.stderr.read() if process.stderr else b"").decode(errors="replace")[-500:]
        shutil.rmtree(directory, ignore_errors=True)
    pytest.fail(f"redis-server did not start on 127.0.0.1 after {attempts} attempts: {problem}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """The session's Redis, emptied before each test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    yield redis_server.url


@attrs.define
class S3Server:
    """moto's S3 server on 127.0.0.1, and the `storage.options` that reach it."""

    endpoint_url: str
    stop: object

    @property
    def options(self) -> dict[str, object]:
        return {"endpoint_url": self.endpoint_url, "client_kwargs": {"region_name": "us-east-1"}}


_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in _AWS_ENV}
    os.environ.update(_AWS_ENV)  # fake credentials: the S3 here is moto's, on loopback
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(endpoint_url=f"http://{host}:{port}", stop=server.stop)
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A new, empty bucket on the moto server; returns its name."""
    import boto3

    name = f"reelgen-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server.endpoint_url, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    client.close()
    return name
