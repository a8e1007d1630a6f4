"""One Redis client per URL per process, with errors that say what to do and never the password."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError

if TYPE_CHECKING:
    import redis

    from ..config import Config

__all__ = ["RedisUnavailable", "client_for", "guarded", "redis_settings", "safe_url"]

T = TypeVar("T")

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


class RedisUnavailable(ConfigError):
    """The configured Redis cannot be reached (or the `redis` package is missing)."""


def safe_url(url: str) -> str:
    """The URL without its password, for messages and `location`."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def redis_settings(config: Config) -> tuple[str, str] | None:
    """(url, namespace) when the configuration shares state through Redis, else None."""
    cluster = getattr(config, "cluster", None)
    if cluster is None or not cluster.enabled:
        return None
    return str(cluster.redis).strip(), cluster.namespace


def _fix(url: str) -> str:
    return (
        f"start the Redis at {safe_url(url)}, or unset REELGEN_REDIS_URL / [cluster] redis to keep "
        "the governor, journal and cache on this machine"
    )


def client_for(url: str, *, check: bool = True) -> redis.Redis:
    """The process's client for `url` (`decode_responses=True`). With `check`, PING first:
    a Redis that is down is a `RedisUnavailable` here, before anything is paid."""
    try:
        import redis
    except ImportError as exc:
        raise RedisUnavailable(
            f"cluster.redis is set but the redis package is not installed: pip install redis "
            f"(the reelgen[redis] extra) ({exc})"
        ) from exc
    with _lock:
        client = _clients.get(url)
        if client is None:
            try:
                client = redis.Redis.from_url(
                    url,
                    decode_responses=True,
                    socket_connect_timeout=5,
                    socket_timeout=30,
                    health_check_interval=30,
                )
            except ValueError as exc:
                raise RedisUnavailable(f"cluster.redis {safe_url(url)!r} is not a Redis URL: {exc}") from exc
            _clients[url] = client
    if check:
        with guarded(url, "reach"):
            client.ping()
    return client


@contextmanager
def guarded(url: str, doing: str) -> Iterator[None]:
    """Turn redis-py's connection and protocol errors into `RedisUnavailable` naming the fix."""
    import redis

    try:
        yield
    except redis.exceptions.AuthenticationError as exc:  # a ConnectionError too: first
        raise RedisUnavailable(f"Redis at {safe_url(url)} refused the credentials in the URL ({exc})") from exc
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise RedisUnavailable(f"cannot {doing} Redis at {safe_url(url)} ({exc}); {_fix(url)}") from exc
    except redis.exceptions.ResponseError as exc:
        if "WRONGTYPE" not in str(exc):
            raise
        raise RedisUnavailable(
            f"Redis at {safe_url(url)} holds other data under reelgen's keys ({exc}); "
            "set [cluster] namespace to a prefix of its own"
        ) from exc


def call(url: str, doing: str, func: Callable[[], T]) -> T:
    with guarded(url, doing):
        return func()


def forget_clients() -> None:
    """Drop cached clients (after a fork: a child must not share its parent's sockets)."""
    with _lock:
        for client in _clients.values():
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a dead socket is best effort
                pass
        _clients.clear()
