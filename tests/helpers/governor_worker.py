"""A separate process using the built-in governor on a shared SQLite file (for cross-process tests).

`python -m tests.helpers.governor_worker '{"do": "hold", ...}'`; results are JSON lines on stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from reelgen.builtins.governor import governor_for
from reelgen.governor import Account, Limits


def _say(**data: Any) -> None:
    print(json.dumps(data), flush=True)


async def main(spec: dict[str, Any]) -> None:
    governor = governor_for(Path(spec["path"]), lease=spec.get("lease"))
    account = Account("fake", spec.get("account", "acct"))
    limits = Limits(
        concurrency=spec.get("concurrency"), submit_rate=spec.get("submit_rate"), query_rate=spec.get("query_rate")
    )
    deadline_at = time.monotonic() + spec.get("deadline", 60.0)
    what = spec["do"]
    if what == "hold":
        # Take a permit `rounds` times, each held `hold` seconds; report when it was held.
        for _ in range(spec.get("rounds", 1)):
            permit = await governor.acquire(account, limits, deadline_at=deadline_at)
            start = time.time()
            await asyncio.sleep(spec["hold"])
            end = time.time()
            await permit.release()
            _say(start=start, end=end)
    elif what == "bind":
        # Take a permit, name it after a job, say so, then never release it: either exit at
        # once (`exit`) or sleep until killed.
        permit = await governor.acquire(account, limits, deadline_at=deadline_at)
        await permit.bind(spec["job_id"])
        _say(bound=spec["job_id"], pid=os.getpid())
        if spec.get("exit"):
            os._exit(0)
        await asyncio.sleep(3600)
    elif what == "create":
        # Take a permit for a journal entry, as a create does, say so, and be killed before
        # binding it to a job (the create may or may not have made a task).
        await governor.acquire(account, limits, deadline_at=deadline_at, entry=spec["entry"])
        _say(entry=spec["entry"], pid=os.getpid())
        await asyncio.sleep(3600)
    elif what == "release_job":
        await governor.release_job(account, spec["job_id"])
        _say(in_use=await governor.in_use(account))
    elif what == "throttle":
        for _ in range(spec["calls"]):
            before = time.time()
            token = await governor.throttle(account, limits, spec["kind"], deadline_at=deadline_at)
            after = time.time()
            await token.done()
            _say(before=before, after=after)
    else:
        raise SystemExit(f"unknown action {what!r}")


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
