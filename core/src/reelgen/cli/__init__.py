"""The `reelgen` command line. Subcommands import what they need when they run,
so `reelgen --help` stays fast; plugins add commands through `reelgen_register_commands`."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from . import _version

__all__ = ["cli", "main"]

_BUILTIN_COMMANDS = {
    "generate": ("reelgen.cli.generate", "generate"),
    "providers": ("reelgen.cli.providers", "providers"),
    "schema": ("reelgen.cli.schema", "schema"),
    "cache": ("reelgen.cli.cache", "cache"),
    "jobs": ("reelgen.cli.jobs", "jobs"),
    "batch": ("reelgen.cli.batch", "batch"),
    "plugins": ("reelgen.cli.providers", "plugins"),
    "new-provider": ("reelgen.cli.new_provider", "new_provider"),
    "worker": ("reelgen.cli.worker", "worker"),
}


class _ReelgenGroup(click.Group):
    """Built-in commands load on demand; plugin commands are added once, on first lookup."""

    _plugins_loaded = False

    def _load_plugin_commands(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from ..plugins import call_safely, get_plugin_manager

        pm = get_plugin_manager()
        for impl in reversed(pm.hook.reelgen_register_commands.get_hookimpls()):
            call_safely(impl.function, cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return sorted(set(super().list_commands(ctx)) | set(_BUILTIN_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _BUILTIN_COMMANDS:
            module, attribute = _BUILTIN_COMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        self._load_plugin_commands()
        return super().get_command(ctx, cmd_name)


@click.group(cls=_ReelgenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, param, value: _version.print_version(ctx, param, value),
    help="Show every installed reelgen distribution with its version, and exit.",
)
def cli() -> None:
    """Generate videos with any installed provider, and get durable, verified MP4s back.

    Progress goes to stderr, results to stdout. Exit codes: 0 success, 2 invalid request,
    usage or configuration (a corrupt cache or job journal file included), 3 provider refused
    (auth, quota, content), 4 provider failure or timeout, 130 interrupted by Ctrl-C (SIGINT),
    143 by SIGTERM, 129 by SIGHUP (the remote job is cancelled where the provider allows it;
    what may still be billed ends with `reelgen jobs resume ID`).
    """


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the `reelgen` script and `python -m reelgen`."""
    from .errors import run_with_exit_codes

    return run_with_exit_codes(cli, argv if argv is not None else sys.argv[1:])
