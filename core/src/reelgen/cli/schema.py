"""`reelgen schema`."""

from __future__ import annotations

import json

import click

__all__ = ["schema"]


@click.command()
def schema() -> None:
    """Print the versioned JSON Schema of the video.generate contract."""
    from .._schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
