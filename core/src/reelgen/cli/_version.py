"""`reelgen --version`: every installed reelgen distribution and its version.

A reelgen distribution is the core, any distribution named `reelgen-*`, and any other that
plugs into reelgen (an entry point in the `reelgen` group), so a bug report names them all.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import click

__all__ = ["installed_distributions", "print_version"]


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def installed_distributions() -> list[tuple[str, str]]:
    """(name, version) of each installed reelgen distribution: the core first, then by name."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        normal = _normal(name)
        if normal == "reelgen-workspace":  # the development checkout's tooling root, not a distribution
            continue
        plugs_in = any(point.group == "reelgen" for point in dist.entry_points)
        if normal == "reelgen" or normal.startswith("reelgen-") or plugs_in:
            found.setdefault(normal, dist.version)
    return sorted(found.items(), key=lambda item: (item[0] != "reelgen", item[0]))


def print_version(ctx: click.Context, _: Any, value: bool) -> None:
    """The eager `--version` option's callback."""
    if not value or ctx.resilient_parsing:
        return
    for name, version in installed_distributions():
        click.echo(f"{name} {version}")
    ctx.exit()
