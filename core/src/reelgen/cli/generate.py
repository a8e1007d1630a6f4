"""`reelgen generate`."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import click

from .errors import EXIT_INTERRUPTED, fail

__all__ = ["generate"]


def _options(pairs: tuple[str, ...], provider: str) -> dict[str, dict[str, Any]]:
    from ..config import parse_value

    options: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE (e.g. audio=false)", param_hint="--option")
        namespace, dot, name = key.strip().rpartition(".")
        options.setdefault(namespace if dot else provider, {})[name] = parse_value(raw.strip())
    return options


@click.command()
@click.argument("image", required=False)
@click.option("--prompt", "-p", required=True, help="What the video shows.")
@click.option("--negative-prompt", help="What to avoid.")
@click.option("--duration", type=float, default=5.0, show_default=True, help="Seconds.")
@click.option("--fps", type=float, default=30.0, show_default=True, help="Frames per second wanted.")
@click.option("--size", default="1280*720", show_default=True, help="W*H or WxH, in pixels.")
@click.option("--seed", type=int, help="Seed (the provider picks and reports one if omitted).")
@click.option("--motion-strength", type=float, help="0.0 to 1.0, where the provider supports it.")
@click.option("--provider", help="Provider name (default: REELGEN_PROVIDER or reelgen.toml).")
@click.option(
    "--option",
    "-o",
    "option_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Provider option, e.g. audio=false or bailian_wan.resolution=720P (repeatable).",
)
@click.option("--strict", is_flag=True, help="Fail instead of warning when the provider cannot honour the request.")
@click.option("--no-cache", is_flag=True, help="Do not look in or write to the result cache.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def generate(
    image: str | None,
    prompt: str,
    negative_prompt: str | None,
    duration: float,
    fps: float,
    size: str,
    seed: int | None,
    motion_strength: float | None,
    provider: str | None,
    option_pairs: tuple[str, ...],
    strict: bool,
    no_cache: bool,
    as_json: bool,
) -> None:
    """Generate a video from IMAGE (a path or URL) and a prompt, and store it durably.

    \b
    Example:
      reelgen generate photo.jpg --prompt "waves roll in at dusk" --duration 5 --size 1280*720
    """
    from ..config import load_config
    from ..contract import VideoRequest
    from ..errors import ReelgenError
    from ..pipeline import agenerate
    from ..registry import resolve_provider_name
    from ..serialization import unstructure
    from .progress import ProgressReporter

    try:
        config = load_config()
        chosen = resolve_provider_name(provider, config)
        request = VideoRequest(
            prompt=prompt,
            negative_prompt=negative_prompt,
            duration=duration,
            fps=fps,
            size=size,
            seed=seed,
            reference_image=image,
            motion_strength=motion_strength,
            options=_options(option_pairs, chosen),
        )
    except ReelgenError as exc:
        fail(exc, as_json=as_json)

    reporter = ProgressReporter()
    try:
        with reporter:
            result = asyncio.run(
                agenerate(request, chosen, config=config, strict=strict, use_cache=not no_cache, on_event=reporter)
            )
    except KeyboardInterrupt:
        if reporter.remote_cancelled:
            note = f"the remote job {reporter.job_id} was cancelled"
        elif reporter.job_id:
            note = f"the remote job {reporter.job_id} could not be cancelled and may still be billed"
        else:
            note = "nothing was submitted"
        click.secho(f"interrupted: {note}", fg="yellow", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except ReelgenError as exc:
        fail(exc, as_json=as_json)

    for warning in result.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    if as_json:
        click.echo(json.dumps(unstructure(result), indent=2))
    else:
        click.echo(result.video_url)
        cached = " (from cache)" if result.cached else ""
        click.echo(f"{result.duration:g}s {result.fps:g}fps {result.size} seed={result.seed}{cached}", err=True)
