"""For tests that interrupt a child process with SIGINT (Ctrl-C)."""

from __future__ import annotations

import signal


def restore_sigint() -> None:
    """`preexec_fn` for a child that must see Ctrl-C.

    A shell running the tests in the background (CI, `cmd &`) ignores SIGINT, children
    inherit that, and Python then installs no KeyboardInterrupt handler. Back to the
    default, the child's Python sets up its own handler as in a terminal.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
