"""`reelgen providers` and `reelgen plugins`."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["plugins", "providers"]


def _failures() -> list[dict[str, Any]]:
    from ..plugins import failures

    return [{"plugin": f.name, "distribution": f.distribution, "error": f.error} for f in failures()]


def _describe(capabilities: Any) -> list[str]:
    caps = capabilities
    lines = [f"model: {caps.model}"]
    if caps.durations:
        lines.append("durations: " + ", ".join(f"{d:g}" for d in caps.durations) + " s")
    elif caps.duration_range:
        step = " (whole seconds)" if caps.integer_duration else ""
        lines.append(f"duration: {caps.duration_range[0]:g}-{caps.duration_range[1]:g} s{step}")
    if caps.native_fps:
        lines.append("fps: always " + " or ".join(f"{f:g}" for f in caps.native_fps))
    elif caps.fps_range:
        lines.append(f"fps: {caps.fps_range[0]:g}-{caps.fps_range[1]:g}")
    if caps.resolution_tiers:
        tiers = ", ".join(t.name for t in caps.resolution_tiers)
        aspect = " (aspect ratio follows the image)" if caps.aspect_follows_image else ""
        lines.append(f"resolution tiers: {tiers}{aspect}")
    elif caps.side_range:
        lines.append(f"size: sides {caps.side_range[0]}-{caps.side_range[1]} px, multiples of {caps.size_multiple_of}")
    image = "required" if caps.requires_reference_image else ("optional" if caps.accepts_reference_image else "no")
    lines.append(f"reference image: {image}")
    supports = [name for name in ("seed", "negative_prompt", "motion_strength") if getattr(caps, name)]
    lines.append("supports: " + (", ".join(supports) or "none") + f"; cancel: {caps.cancel}")
    if caps.options:
        lines.append("options: " + ", ".join(sorted(caps.options)))
    if caps.billed:
        lines.append("billed: yes")
    return lines


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def providers(as_json: bool) -> None:
    """List installed providers, their capabilities, and plugins that failed to load."""
    from .._registry import provider_infos
    from ..config import load_config

    infos = provider_infos(load_config())
    failed = _failures()
    if as_json:
        payload = {
            "providers": [
                {
                    "name": info.name,
                    "plugin": info.plugin,
                    "capabilities": info.capabilities.to_dict() if info.capabilities else None,
                    "error": info.error,
                }
                for info in infos
            ],
            "failed_plugins": failed,
        }
        click.echo(json.dumps(payload, indent=2))
        return
    if not infos:
        click.echo(
            "no providers installed: from a checkout of the repository, pip install ./providers/preview "
            "./providers/bailian_wan (or built wheels: docs/install.md), or write one: reelgen new-provider NAME"
        )
    for info in infos:
        click.secho(f"{info.name}", bold=True, nl=False)
        click.echo(f"  (plugin {info.plugin})")
        if info.capabilities is None:
            click.secho(f"  cannot be set up: {info.error}", fg="red")
            continue
        for line in _describe(info.capabilities):
            click.echo(f"  {line}")
    for failure in failed:
        click.secho(f"failed plugin {failure['plugin']}: {failure['error']}", fg="red", err=True)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(as_json: bool) -> None:
    """List loaded plugins, the hooks they implement, and plugins that failed to load."""
    from ..plugins import get_plugin_manager

    pm = get_plugin_manager()
    loaded = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        loaded.append({"name": name, "hooks": hooks})
    failed = _failures()
    if as_json:
        click.echo(json.dumps({"plugins": loaded, "failed_plugins": failed}, indent=2))
        return
    for item in loaded:
        click.echo(f"{item['name']}: {', '.join(item['hooks'])}")
    for failure in failed:
        click.secho(f"failed: {failure['plugin']}: {failure['error']}", fg="red")
