"""`reelgen emulator dashscope` (and `python -m reelgen_bailian_wan.emulator`).

`dashscope_command` is a plain `click.Command`; the bailian_wan plugin registers it
under `reelgen emulator`. Every option also reads a `REELGEN_EMULATOR_*`
environment variable.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

import attrs
import click

from .config import EmulatorConfig, Faults

__all__ = ["dashscope_command"]


def _fault_options(command: Any) -> Any:
    """One `--fault-<name>` option per `Faults` field, generated so they cannot drift."""
    for field in reversed(attrs.fields(Faults)):
        name = field.name.replace("_", "-")
        kind: type = type(field.default)
        command = click.option(
            f"--fault-{name}",
            f"fault_{field.name}",
            type=kind,
            default=None,
            envvar=f"REELGEN_EMULATOR_FAULT_{field.name.upper()}",
            help=f"Faults.{field.name} (default {field.default!r}).",
        )(command)
    return command


def _limit(value: float | None) -> float | None:
    return None if value is not None and value <= 0 else value


@click.command("dashscope", context_settings={"auto_envvar_prefix": "REELGEN_EMULATOR"})
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=int, default=0, show_default=True, help="Port (0 picks a free one).")
@click.option(
    "--time-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Multiply queue and run times (0.01 for fast tests).",
)
@click.option(
    "--queue-seconds", type=float, default=1.0, show_default=True, help="Simulated time a task stays PENDING."
)
@click.option(
    "--run-seconds",
    type=float,
    default=None,
    help="Simulated RUNNING time [default: a model of the real service, minutes].",
)
@click.option(
    "--url-ttl-seconds",
    type=float,
    default=86400.0,
    show_default=True,
    help="Validity of result video URLs (wall clock).",
)
@click.option(
    "--task-ttl-seconds",
    type=float,
    default=86400.0,
    show_default=True,
    help="After this, a task id answers UNKNOWN (wall clock).",
)
@click.option(
    "--strict-parameters/--lenient-parameters",
    default=False,
    show_default=True,
    help="Reject unknown input/parameters keys with 400 instead of ignoring them.",
)
@click.option(
    "--api-key", "api_keys", multiple=True, help="Accept only this key (repeatable) [default: any non-empty key]."
)
@click.option(
    "--submit-rps", type=float, default=5, show_default=True, help="Task submissions per second (0 disables)."
)
@click.option("--max-concurrent", type=int, default=5, show_default=True, help="Tasks running at once (0 disables).")
@click.option("--query-qps", type=float, default=20, show_default=True, help="Task queries per second (0 disables).")
@click.option(
    "--concurrency-policy",
    type=click.Choice(["queue", "reject"]),
    default="queue",
    show_default=True,
    help="Excess tasks wait PENDING, or get 429.",
)
@click.option(
    "--render-mode",
    type=click.Choice(["animated", "still"]),
    default="animated",
    show_default=True,
    help="'still' renders a static frame: same size/fps/length, much cheaper.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep rendered videos here across runs [default: a temporary directory].",
)
@click.option(
    "--faults",
    "faults_spec",
    default="",
    envvar="REELGEN_EMULATOR_FAULTS",
    help='Faults as "name=value,..." e.g. "query_503=0.2,seed=7".',
)
@_fault_options
@click.option("-v", "--verbose", is_flag=True, help="Log every request line to stderr.")
def dashscope_command(**options: Any) -> None:
    """Run a local DashScope video-synthesis emulator (wan2.6-i2v-flash) until Ctrl-C."""
    from .server import DashScopeEmulator

    if options.pop("verbose"):
        logging.basicConfig(level=logging.DEBUG, format="%(message)s")
    host, port = options.pop("host"), options.pop("port")
    try:
        faults = Faults.parse(options.pop("faults_spec"))
        overrides = {}
        for name in [n for n in options if n.startswith("fault_")]:
            value = options.pop(name)
            if value is not None:
                overrides[name[len("fault_") :]] = value
        config = EmulatorConfig(
            api_keys=options.pop("api_keys") or None,
            submit_rps=_limit(options.pop("submit_rps")),
            query_qps=_limit(options.pop("query_qps")),
            max_concurrent=int(_limit(options.pop("max_concurrent")) or 0) or None,
            faults=attrs.evolve(faults, **overrides),
            **options,
        )
    except (TypeError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    faults = config.faults

    emulator = DashScopeEmulator(config, host=host, port=port).start()
    click.echo(f"DashScope emulator ({config.model}) listening on {emulator.base_url}")
    click.echo(f"  export DASHSCOPE_HTTP_BASE_URL={emulator.base_url}")
    click.echo(f"  counters: {emulator.origin}/__emulator__/counters")
    if faults.active:
        click.echo(f"  faults: {faults}")
    stopped = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.is_set():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        click.echo("DashScope emulator stopped.", err=True)
