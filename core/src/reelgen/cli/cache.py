"""`reelgen cache list|clear`."""

from __future__ import annotations

import datetime
import json

import click

__all__ = ["cache"]


def _store() -> object:
    from ..config import load_config
    from ..store import open_store

    config = load_config().cache
    if not config.enabled:
        raise click.UsageError("the cache is disabled (cache.url = 'none')")
    return open_store(config.url)


@click.group()
def cache() -> None:
    """Inspect or clear the result cache (URLs and metadata; stored videos are kept)."""


@cache.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(as_json: bool) -> None:
    """List cached results, newest first."""
    from ..serialization import unstructure
    from ..store import SqliteStore

    store = _store()
    assert isinstance(store, SqliteStore)
    entries = store.cache_list()
    if as_json:
        rows = [{"key": e.key, "created_at": e.created_at, "result": unstructure(e.result)} for e in entries]
        click.echo(json.dumps(rows, indent=2))
        return
    if not entries:
        click.echo("the cache is empty")
    for entry in entries:
        when = datetime.datetime.fromtimestamp(entry.created_at).isoformat(timespec="seconds")
        result = entry.result
        click.echo(
            f"{entry.key[:12]}  {when}  {entry.provider}/{entry.model}  "
            f"{result.duration:g}s {result.fps:g}fps {result.size}  {result.video_url}"
        )


@cache.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clear(yes: bool) -> None:
    """Forget every cached result (stored videos are not deleted)."""
    from ..store import SqliteStore

    store = _store()
    assert isinstance(store, SqliteStore)
    if not yes:
        click.confirm("Forget every cached result?", abort=True, err=True)
    removed = store.cache_clear()
    click.echo(f"removed {removed} cached result(s)")
