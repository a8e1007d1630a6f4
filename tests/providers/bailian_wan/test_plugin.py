"""The plugin as installed: entry point, provider registration, `reelgen emulator dashscope`, exports."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import click
from click.testing import CliRunner

import reelgen
import reelgen_bailian_wan
from reelgen.plugins import provider_entries
from reelgen_bailian_wan import plugin

DOCS = Path(__file__).resolve().parents[3] / "docs" / "providers" / "bailian_wan.md"


def test_the_entry_point_registers_the_provider() -> None:
    (point,) = [p for p in importlib.metadata.entry_points(group="reelgen") if p.name == "bailian_wan"]
    assert point.value == "reelgen_bailian_wan.plugin"
    entry = provider_entries()["bailian_wan"]
    assert entry.factory is plugin.create_provider
    provider = entry.factory({})
    assert isinstance(provider, reelgen.Provider)


def test_the_emulator_command_is_added_under_reelgen_emulator() -> None:
    cli = click.Group("reelgen")
    plugin.reelgen_register_commands(cli)
    result = CliRunner().invoke(cli, ["emulator", "dashscope", "--help"])
    assert result.exit_code == 0, result.output
    assert "DashScope" in result.output and "--port" in result.output
    listing = CliRunner().invoke(cli, ["emulator", "--help"])
    assert "dashscope" in listing.output


def test_an_existing_emulator_group_is_reused() -> None:
    cli = click.Group("reelgen")
    existing = click.Group("emulator")
    cli.add_command(existing)
    plugin.reelgen_register_commands(cli)
    assert cli.commands["emulator"] is existing and "dashscope" in existing.commands


def test_the_real_cli_lists_the_emulator_command() -> None:
    from reelgen.cli import cli

    result = CliRunner().invoke(cli, ["emulator", "dashscope", "--help"])
    assert result.exit_code == 0, result.output


def test_exported_names_are_what_the_docs_promise() -> None:
    exported = set(reelgen_bailian_wan.__all__)
    assert exported == {n for n in dir(reelgen_bailian_wan) if not n.startswith("_")} & exported
    documented = set(re.findall(r"`reelgen_bailian_wan\.(\w+)`", DOCS.read_text(encoding="utf-8")))
    assert documented == exported
