"""The hooks a reelgen plugin can implement. Mark implementations with `reelgen.hookimpl`.

Any hook may return an awaitable; the core awaits it. Built-in cache and storage are
plugins implementing these same hooks (`reelgen.builtins`), so a plugin can add to them
or, by answering first, replace them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable

    import click

    from .config import Config
    from .contract import VideoRequest, VideoResult
    from .download import VideoSource
    from .events import Event
    from .governor import Governor
    from .journal import Journal
    from .provider import ProviderFactory

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("reelgen")
hookimpl = pluggy.HookimplMarker("reelgen")


@hookspec
def reelgen_register_providers(register: Callable[[str, ProviderFactory], None]) -> None:
    """Register provider factories: `register("name", factory)`.

    `factory(config)` gets the provider's `[providers.NAME]` config mapping and returns a
    `reelgen.Provider`. It must be cheap and offline (no network, no heavy imports).
    """


@hookspec
def reelgen_register_commands(cli: click.Group) -> None:
    """Add commands to the `reelgen` CLI: `cli.add_command(...)` or `@cli.command()`."""


@hookspec(firstresult=True)
def reelgen_cache_get(key: str, request: VideoRequest, config: Config) -> VideoResult | None:
    """Return the cached `VideoResult` for this cache key, or None. The first answer wins.

    `config` is the generation's configuration (an implementation takes any subset of the
    arguments)."""


@hookspec
def reelgen_cache_put(key: str, request: VideoRequest, result: VideoResult, config: Config) -> None:
    """Remember a result under this cache key. Store URLs and metadata only, never secrets."""


@hookspec(firstresult=True)
def reelgen_store_video(
    request: VideoRequest, result: VideoResult, source: VideoSource, config: Config, job_id: str | None
) -> VideoResult | None:
    """Persist the video and return `result` with its durable `video_url`, sha256 and bytes.

    `source` streams the downloaded file (`source.open()`, `source.path`, `source.sha256`);
    `result.video_url` is the provider's URL on entry. `config` is the configuration in
    effect, `job_id` the job's id (`provider:task_id`), to name the take by. Never overwrite
    an existing file. Return None to leave it to the next plugin.
    """


@hookspec
def reelgen_check_storage(config: Config) -> None:
    """Raise `reelgen.errors.ConfigError` (with the fix) if videos cannot be stored as
    `config` says. Called before anything is paid; every implementation is called."""


@hookspec(firstresult=True)
def reelgen_governor(config: Config) -> Governor | None:
    """Return the `reelgen.governor.Governor` that enforces account limits for `config`.

    The first answer wins; the built-in SQLite lease governor answers last. Called for
    every generation: cache the backend (one per location per process) and return it.
    Synchronous and cheap: open connections lazily, on the governor's first call.
    """


@hookspec
def reelgen_event(event: Event) -> Any:
    """Observe a lifecycle event: submitted, status, progress, downloaded, stored, cache_hit,
    succeeded, failed, cancelled. Exceptions raised here are logged and ignored."""


@hookspec(firstresult=True)
def reelgen_journal(config: Config) -> Journal | None:
    """Return the job journal for `config` (`reelgen.journal.Journal`), or None to pass.

    The built-in (trylast) keeps it in SQLite at `jobs.url`; a plugin answering first can
    keep it elsewhere (e.g. Redis). Called once per generation: cache the instance.
    """
