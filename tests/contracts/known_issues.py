"""Suite tests that fail today because of a bug outside the contract kit, and why.

Each entry names the bug so it can be fixed where it lives; the kit keeps checking. An
entry marked strict must still fail (when the bug is fixed, the run says so, and the entry
goes); a non-strict one is a state-machine test that may meet the bug, or may not.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Known:
    reason: str
    strict: bool = True


#: where ("preview", "bailian_wan", or "fakeremote" for the in-process control) -> test -> why.
KNOWN_FAILURES: dict[str, dict[str, Known]] = {}
#: Broken providers whose own defect a known bug can hide (the state machine may meet it first).
MAY_MEET_FIRST: dict[str, str] = {}
