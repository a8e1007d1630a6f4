"""Turn reelgen's error types into the CLI's exit codes and one clear line on stderr."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from ..errors import Cancelled, ReelgenError

__all__ = ["EXIT_INTERRUPTED", "fail", "run_with_exit_codes"]

EXIT_INTERRUPTED = 130


def fail(exc: BaseException, *, as_json: bool = False) -> NoReturn:
    """Report `exc` and exit with its code."""
    if isinstance(exc, ReelgenError):
        code = exc.exit_code
        kind = type(exc).__name__
    elif isinstance(exc, KeyboardInterrupt):
        code, kind = EXIT_INTERRUPTED, "Interrupted"
    else:
        code, kind = 4, type(exc).__name__
    message = str(exc) or kind
    if as_json:
        import json

        payload: dict[str, Any] = {"error": {"type": kind, "message": message, "exit_code": code}}
        for attribute in ("code", "request_id", "task_id", "job_id", "field"):
            value = getattr(exc, attribute, None)
            if value is not None:
                payload["error"][attribute] = value
        click.echo(json.dumps(payload))
    click.secho(f"error ({kind}): {message}", fg="red", err=True)
    sys.exit(code)


def run_with_exit_codes(command: click.Command, args: list[str]) -> Any:
    try:
        return command.main(args=args, prog_name="reelgen", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (ReelgenError, KeyboardInterrupt) as exc:
        if isinstance(exc, Cancelled):
            click.secho(f"cancelled: {exc}", fg="yellow", err=True)
            sys.exit(EXIT_INTERRUPTED)
        fail(exc)
