"""A separate process using the Redis governor or journal (cross-process tests, "another machine").

`python -m tests.scale.redis_worker '{"do": "hold", "url": ..., ...}'`; results are JSON lines on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from reelgen.cluster.governor import redis_governor
from reelgen.cluster.journal import redis_journal
from reelgen.governor import Account, Limits
from reelgen.journal import JournalEntry, Owner


def _say(**data: Any) -> None:
    print(json.dumps(data), flush=True)


def _wait_for_go(spec: dict[str, Any]) -> None:
    # Every process starts its race at the same instant (a file the test creates).
    go = spec.get("go")
    if go:
        while not os.path.exists(go):
            time.sleep(0.005)


async def governor_actions(spec: dict[str, Any]) -> None:
    governor = redis_governor(spec["url"], spec.get("namespace", "reelgen"), lease=spec.get("lease"))
    account = Account("fake", spec.get("account", "acct"))
    limits = Limits(
        concurrency=spec.get("concurrency"), submit_rate=spec.get("submit_rate"), query_rate=spec.get("query_rate")
    )
    deadline_at = time.monotonic() + spec.get("deadline", 60.0)
    what = spec["do"]
    _wait_for_go(spec)
    if what == "hold":
        for _ in range(spec.get("rounds", 1)):
            permit = await governor.acquire(account, limits, deadline_at=deadline_at)
            start = time.time()
            await asyncio.sleep(spec["hold"])
            end = time.time()
            await permit.release()
            _say(start=start, end=end)
    elif what == "bind":
        permit = await governor.acquire(account, limits, deadline_at=deadline_at)
        await permit.bind(spec["job_id"])
        _say(bound=spec["job_id"], pid=os.getpid())
        await asyncio.sleep(3600)  # until killed
    elif what == "create":
        # Take a permit for a journal entry, as a create does, say so, and be killed before
        # binding it to a job (the create may or may not have made a task).
        await governor.acquire(account, limits, deadline_at=deadline_at, entry=spec["entry"])
        _say(entry=spec["entry"], pid=os.getpid())
        await asyncio.sleep(3600)
    elif what == "throttle":
        for _ in range(spec["calls"]):
            before = time.time()
            await governor.throttle(account, limits, spec["kind"], deadline_at=deadline_at)
            _say(before=before, after=time.time())
    else:
        raise SystemExit(f"unknown action {what!r}")


def journal_actions(spec: dict[str, Any]) -> None:
    journal = redis_journal(spec["url"], spec.get("namespace", "reelgen"))
    what = spec["do"]
    if what == "open":
        entry = JournalEntry(
            id=spec["id"],
            provider="fake",
            model="m",
            key=spec["key"],
            state="submitting",
            shared=True,
            submitted_at=time.time(),
            owner=Owner.current(),
            heartbeat=time.time(),
        )
        _wait_for_go(spec)
        opened = journal.open(entry)
        _say(created=opened.created, id=opened.entry.id)
    elif what == "adopt":
        expected = Owner(**spec["expected"]) if spec.get("expected") else None
        _wait_for_go(spec)
        adopted = journal.adopt(spec["id"], expected, Owner.current())
        _say(adopted=adopted is not None)
    else:
        raise SystemExit(f"unknown action {what!r}")


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    if spec["do"] in ("open", "adopt"):
        journal_actions(spec)
    else:
        asyncio.run(governor_actions(spec))
