"""Generate docs/cli.md from the CLI itself; `--check` fails if the file is out of date.

Run `make docs` after changing a command's options or help text. CI runs `--check`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reelgen.cli import cli

TARGET = Path(__file__).with_name("cli.md")

HEADER = """# CLI reference

Generated from the CLI by `docs/gen_cli_reference.py` (`make docs`); CI checks it is up to date.
Commands added by plugins (like `reelgen emulator dashscope` from `reelgen-bailian-wan`) are
included when the plugin is installed.

Exit codes: `0` success, `2` invalid request, usage or configuration (a corrupt cache or
job journal file included), `3` provider refused (auth, quota, content), `4` provider
failure or timeout, `130` interrupted by Ctrl-C (SIGINT), `143` by SIGTERM, `129` by SIGHUP
(the remote job is cancelled where the provider allows it). See [Jobs and money](jobs.md).
"""


def _sections(command: click.Command, path: list[str]) -> list[str]:
    ctx = click.Context(command, info_name=" ".join(path), terminal_width=100, max_content_width=100)
    text = command.get_help(ctx)
    title = "#" * min(len(path) + 1, 4)
    out = [f"{title} `{' '.join(path)}`\n", "```text\n" + text + "\n```\n"]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                out += _sections(sub, [*path, name])
    return out


def render() -> str:
    return HEADER + "\n" + "\n".join(_sections(cli, ["reelgen"]))


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print("docs/cli.md is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
