"""Turn reelgen's error types into the CLI's exit codes and one clear line on stderr.

Exit codes: 0 success, 2 invalid request, usage or configuration (including a corrupt
cache or job store file), 3 provider refused, 4 provider failure or timeout, 130 Ctrl-C
(SIGINT), 143 SIGTERM, 129 SIGHUP (see `reelgen.cli.signals`).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ..errors import Cancelled, ReelgenError

if TYPE_CHECKING:
    from .outcome import JobTracker
    from .signals import Interrupted

__all__ = ["EXIT_INTERRUPTED", "fail", "interrupted", "run_with_exit_codes"]

EXIT_INTERRUPTED = 130


def _with_command(message: str, command: str | None) -> str:
    """`message`, ending with `command` (once)."""
    if command is None:
        return message
    # The core may already name the command, quoted for Python readers: unquote it, and
    # end with it exactly, so it can be copied from the end of the line.
    message = message.replace(f"`{command}`", command).rstrip().rstrip(".")
    if message.endswith(command):
        return message
    return f"{message}; collect it with: {command}"


def fail(exc: BaseException, *, as_json: bool = False, tracker: JobTracker | None = None) -> NoReturn:
    """Report `exc` and exit with its code; after payment, the message ends with `reelgen jobs resume ID`."""
    if isinstance(exc, ReelgenError):
        code = exc.exit_code
        kind = type(exc).__name__
    elif isinstance(exc, KeyboardInterrupt):
        code, kind = EXIT_INTERRUPTED, "Interrupted"
    else:
        code, kind = 4, type(exc).__name__
    command = None
    if tracker is not None:
        command = tracker.failure_resume(exc)
    else:
        from .outcome import JobTracker

        command = JobTracker().failure_resume(exc)
    message = _with_command(str(exc) or kind, command)
    if as_json:
        payload: dict[str, Any] = {"error": {"type": kind, "message": message, "exit_code": code}}
        for attribute in ("code", "request_id", "task_id", "job_id", "field"):
            value = getattr(exc, attribute, None)
            if value is not None:
                payload["error"][attribute] = value
        if command is not None:
            payload["error"].setdefault("job_id", command.rsplit(" ", 1)[-1])
            payload["error"]["resume"] = command
        click.echo(json.dumps(payload))
    click.secho(f"error ({kind}): {message}", fg="red", err=True)
    sys.exit(code)


def interrupted(
    signal: Interrupted, tracker: JobTracker, *, as_json: bool = False, entry_state: str | None = None
) -> NoReturn:
    """Say what a signal stopped and what may still be billed, then exit with its code."""
    note, command = tracker.interrupted_note(signal.name, entry_state=entry_state)
    if as_json:
        payload: dict[str, Any] = {
            "error": {"type": "Interrupted", "message": note, "exit_code": signal.exit_code, "signal": signal.name}
        }
        if tracker.id is not None:
            payload["error"]["job_id"] = tracker.id
            payload["error"]["remote_cancelled"] = bool(tracker.remote_cancelled)
        if command is not None:
            payload["error"]["resume"] = command
        click.echo(json.dumps(payload))
    click.secho(note, fg="yellow", err=True)
    sys.exit(signal.exit_code)


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
