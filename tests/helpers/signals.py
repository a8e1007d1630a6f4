"""For tests that interrupt a child process with a signal (Ctrl-C, SIGHUP, SIGTERM)."""

from __future__ import annotations

import signal


def restore_signals() -> None:
    """`preexec_fn` for a child that must see the signals a terminal would send it.

    A shell running the tests in the background (CI, `cmd &`) ignores SIGINT, and `nohup`
    ignores SIGHUP; children inherit that, and reelgen, like any well-behaved program, then
    leaves those signals ignored. Back to the default, the child handles them as it would
    in a terminal.
    """
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
