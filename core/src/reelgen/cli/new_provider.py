"""`reelgen new-provider NAME`: a plugin folder that installs and passes the contract kit as written.

The files come from `reelgen/templates/provider/` (package data of the core wheel):
`*.tmpl` files are filled in (`{{name}}`, `{{package}}`, ...) and lose the suffix, the
`__package__` folder becomes the import package.
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import click

__all__ = ["new_provider", "render_plugin"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or keyword.iskeyword(name) or name.endswith("_"):
        raise click.BadParameter(
            "a provider name is lowercase letters, digits and underscores, starting with a letter "
            f"(it is the [providers.NAME] section and the entry point name), got {name!r}",
            param_hint="NAME",
        )
    return name


def _values(name: str) -> dict[str, str]:
    from .. import __version__

    return {
        "name": name,
        "package": f"reelgen_{name}",
        "dist": f"reelgen-{name.replace('_', '-')}",
        "Class": "".join(part.capitalize() for part in name.split("_")),
        "ENV": name.upper(),
        "reelgen_version": __version__,
    }


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def _walk(folder: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    found = []
    for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if item.name == "__pycache__":
            continue
        if item.is_dir():
            found.extend(_walk(item, (*prefix, item.name)))
        else:
            found.append(((*prefix, item.name), item))
    return found


def render_plugin(name: str, directory: Path) -> Path:
    """Write the plugin folder for provider `name` to `directory / name`; return that folder."""
    values = _values(_check_name(name))
    target = directory / name
    if target.exists() and any(target.iterdir()):
        raise click.ClickException(f"{target} already exists and is not empty; choose another --dir or name")
    template = resources.files("reelgen").joinpath("templates", "provider")
    for parts, source in _walk(template):
        relative = Path(*(values["package"] if part == "__package__" else part for part in parts))
        text = source.read_text(encoding="utf-8")
        if relative.suffix == ".tmpl":
            relative, text = relative.with_suffix(""), _fill(text, values)
        out = target / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return target


@click.command("new-provider")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Where to create the NAME folder.",
)
def new_provider(name: str, directory: Path) -> None:
    """Create a provider plugin folder that passes the contract kit as written.

    NAME is the provider's name (lowercase, underscores): its [providers.NAME] section and
    its entry point. The folder holds a pyproject with the `reelgen` entry point, a provider on
    reelgen.BaseProvider with a declared config class, its capabilities, a sandbox (an
    in-process fake of the service, with fault injection), a test module subclassing the
    contract suite, and a README. Then: `pip install ./NAME` and `pytest --reelgen-provider NAME`.
    """
    target = render_plugin(name, directory)
    values = _values(name)
    click.echo(f"created {target} ({values['dist']}, import {values['package']})")
    # "./" keeps pip from looking the folder's name up on an index.
    where = str(target) if target.is_absolute() else f"./{target}"
    click.echo(f"next: pip install {where} && pytest --reelgen-provider {name}")
