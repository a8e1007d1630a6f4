"""`reelgen cache list|clear`.

A cache file that is not a usable database is named with its fix (exit 2), never a
traceback; `cache clear` moves such a file aside under a timestamped name and says so:
it never deletes a file silently.
"""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING

import click

from .errors import fail

if TYPE_CHECKING:
    from .._store import CacheEntry, CacheStore

__all__ = ["cache"]

_PROMPT_CHARS = 40


def _store(as_json: bool = False) -> CacheStore:
    from .._store import open_cache
    from ..config import is_disabled, load_config
    from ..errors import ConfigError, ReelgenError

    try:
        loaded = load_config()
        config = loaded.cache
        if is_disabled(config.url):
            raise ConfigError(f"the cache is disabled (cache.url = {config.url!r})")
        if loaded.cluster.enabled:  # shared through Redis: every machine's entries
            from ..cluster import client_for, redis_settings
            from ..cluster.cache import RedisCache

            settings = redis_settings(loaded)
            assert settings is not None
            client_for(settings[0])  # down: a clear error
            return RedisCache(*settings)  # type: ignore[return-value]
        return open_cache(config.url)
    except ReelgenError as exc:
        fail(exc, as_json=as_json)


def _prompt(prompt: str) -> str:
    prompt = " ".join(prompt.split())
    if len(prompt) > _PROMPT_CHARS:
        prompt = prompt[: _PROMPT_CHARS - 1] + "\u2026"
    return json.dumps(prompt, ensure_ascii=False)


@click.group()
def cache() -> None:
    """Inspect or clear the result cache (URLs and metadata; stored videos are kept)."""


@cache.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(as_json: bool) -> None:
    """List cached results, newest first, with their prompts."""
    from ..errors import ReelgenError
    from ..serialization import unstructure
    from .generate import local_path

    store = _store(as_json)
    try:
        entries = store.cache_list()
    except ReelgenError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        rows = [
            {"key": e.key, "created_at": e.created_at, "prompt": _entry_prompt(e), "result": unstructure(e.result)}
            for e in entries
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not entries:
        click.echo("the cache is empty")
    for entry in entries:
        when = datetime.datetime.fromtimestamp(entry.created_at).isoformat(sep=" ", timespec="seconds")
        result = entry.result
        where = local_path(result.video_url) or result.video_url
        click.echo(
            f"{entry.key[:12]}  {when}  {entry.provider}/{entry.model}  "
            f"{result.duration:g}s {result.fps:g}fps {result.size}  {where}  {_prompt(_entry_prompt(entry))}"
        )


def _entry_prompt(entry: CacheEntry) -> str:
    return entry.prompt


@cache.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clear(yes: bool) -> None:
    """Forget every cached result (stored videos are not deleted).

    A cache file that is not a usable database is moved aside (renamed with a timestamp,
    never deleted) and a new, empty cache starts.
    """
    from ..errors import ReelgenError

    store = _store()
    if not yes:
        click.confirm("Forget every cached result?", abort=True, err=True)
    try:
        removed = store.cache_clear()
    except ReelgenError as exc:
        fail(exc)
    moved = getattr(store, "moved_aside", None)
    if moved is not None:
        click.echo(
            f"the cache file {store.path} was not a usable database: moved it aside to {moved} "
            "(kept; delete it when you no longer need it); the cache is now empty"
        )
        return
    click.echo(f"removed {removed} cached result(s)")
