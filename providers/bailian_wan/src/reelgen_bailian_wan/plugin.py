"""The `reelgen` entry point: registers the `bailian_wan` provider and `reelgen emulator dashscope`.

Importing this module is cheap: the provider module does not import the SDK, and the
emulator's command is imported only when `reelgen emulator dashscope` is looked up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import click

from reelgen.hookspecs import hookimpl

from .capabilities import PROVIDER

if TYPE_CHECKING:
    from .provider import BailianWanProvider

__all__ = ["create_provider", "reelgen_register_commands", "reelgen_register_providers"]


def create_provider(config: Mapping[str, Any] | None = None) -> BailianWanProvider:
    """The provider factory: offline and cheap (no SDK import, no network, no emulator yet).

    With `emulator = true` the provider is pointed at the bundled emulator, which starts on
    its first call; the provider class itself knows nothing of the emulator.
    """
    from .config import parse_config
    from .provider import BailianWanProvider

    settings = parse_config(config or {})
    if settings.emulator:
        from .emulated import EmulatorEndpoint

        return BailianWanProvider(settings, endpoint=EmulatorEndpoint(settings.emulator_time_scale))
    return BailianWanProvider(settings)


@hookimpl
def reelgen_register_providers(register: Callable[[str, Any], None]) -> None:
    register(PROVIDER, create_provider)


class _EmulatorGroup(click.Group):
    """`reelgen emulator`: local stand-ins for provider APIs; `dashscope` loads on lookup."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | {"dashscope"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "dashscope" and "dashscope" not in self.commands:
            from .emulator.cli import dashscope_command

            self.add_command(dashscope_command, "dashscope")
        return super().get_command(ctx, cmd_name)


@hookimpl
def reelgen_register_commands(cli: click.Group) -> None:
    group = cli.commands.get("emulator")
    if group is None:
        cli.add_command(_EmulatorGroup("emulator", help="Run local emulators of provider APIs."))
    elif isinstance(group, click.Group):
        from .emulator.cli import dashscope_command

        group.add_command(dashscope_command, "dashscope")
