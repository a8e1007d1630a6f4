"""Scale-out tests run against real services on loopback: redis-server and moto's S3 server."""

from __future__ import annotations

from tests.helpers.services import redis_server, redis_url, s3_bucket, s3_server  # noqa: F401 - fixtures
