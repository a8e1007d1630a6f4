"""The DashScope emulator as the contract suite's sandbox for `bailian_wan`.

`reelgen_bailian_wan.testing.pytest_plugin` offers it as the `reelgen_sandbox_bailian_wan`
fixture, so `pytest --reelgen-provider bailian_wan` runs the contract kit against the
emulator with nothing else to set up. `reelgen-contracts` is imported only when the
fixture is used, so this distribution does not depend on it.

One emulator for the session, on loopback. The provider talks to it through its
`base_url` with a key from a key file (so the "auth" fault can swap the key). Faults:
failed tasks with the codes that map to each refusal, and one-shot 503/429 replies.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from reelgen_contracts import ExpectedFault, Sandbox

KEY = "sk-reelgen-contract-suite-0123456789"
# Emulator time runs 333x fast; tasks wait 0.12 s in the queue so a cancel can catch them PENDING;
# "still" renders are the cheap kind (same size, fps, length and tracks, no camera move).
TIME_SCALE = 0.003
QUEUE_SECONDS = 40.0


def _seed_for_one_fault(stream: str) -> tuple[int, float]:
    """A fault seed and probability such that the first draw of `stream` faults and the next 100 do not."""
    for seed in range(1, 1_000_000):
        rng = random.Random(f"{seed}:{stream}")
        first = rng.random()
        if first < 0.001:
            probability = first + 1e-12
            if all(rng.random() >= probability for _ in range(100)):
                return seed, probability
    raise RuntimeError("no seed found")  # pragma: no cover


class EmulatorFaults:
    """Arms one emulator fault at a time (see `reelgen_contracts.sandbox.FaultInjector`)."""

    _FAILED_CODES: ClassVar[dict[str, str]] = {
        "failed": "InternalError.Algo",
        "content": "DataInspectionFailed",
        "quota": "Arrearage",
    }

    def __init__(self, emulator: Any, key_file: Path) -> None:
        self.emulator = emulator
        self.key_file = key_file

    def kinds(self) -> Collection[str]:
        return ("auth", "quota", "content", "failed", "transient", "rate_limited")

    def arm(self, kind: str) -> ExpectedFault:
        from reelgen_bailian_wan.emulator import Faults
        from reelgen_bailian_wan.emulator.errors import failure_message
        from reelgen_contracts import ExpectedFault

        if kind == "auth":
            self.key_file.write_text("sk-this-key-is-not-known-to-the-emulator")
            return ExpectedFault(code="InvalidApiKey")
        if kind in self._FAILED_CODES:
            code = self._FAILED_CODES[kind]
            self.emulator.set_faults(Faults(task_failed=1.0, failed_code=code))
            return ExpectedFault(code=code, message=failure_message(code))
        if kind == "transient":
            seed, probability = _seed_for_one_fault("query")
            self.emulator.set_faults(Faults(seed=seed, query_503=probability))
            return ExpectedFault()
        if kind == "rate_limited":
            seed, probability = _seed_for_one_fault("create")
            self.emulator.set_faults(Faults(seed=seed, create_429=probability))
            return ExpectedFault()
        raise ValueError(f"unknown fault kind {kind!r}")

    def disarm(self) -> None:
        from reelgen_bailian_wan.emulator import Faults

        self.key_file.write_text(KEY)
        self.emulator.set_faults(Faults())


def _received(emulator: Any) -> Any:
    def received(task_id: str) -> dict[str, Any] | None:
        import hashlib

        for task in emulator.tasks():
            if task["task_id"] == task_id:
                sent = {key: str(value) for key, value in task["input"].items()}
                # Inline images are long: their digest says the same thing.
                sent = {k: hashlib.sha256(v.encode()).hexdigest() if len(v) > 200 else v for k, v in sent.items()}
                return {"input": sent, "parameters": task["parameters"]}
        return None

    return received


def sandbox(directory: Path) -> Iterator[Sandbox]:
    """Run an emulator for the suite; `directory` holds the key file the faults swap."""
    from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig
    from reelgen_contracts import Sandbox

    key_file = directory / "dashscope.key"
    key_file.write_text(KEY)
    with DashScopeEmulator(
        EmulatorConfig(api_keys={KEY}, time_scale=TIME_SCALE, queue_seconds=QUEUE_SECONDS, render_mode="still")
    ) as emulator:
        yield Sandbox(
            config={
                "base_url": emulator.base_url,
                "api_key_file": str(key_file),
                "time_scale": TIME_SCALE,
            },
            loopback=True,
            billed_jobs=lambda: int(emulator.counters()["tasks_created"]),
            faults=EmulatorFaults(emulator, key_file),
            received=_received(emulator),
            time_scale=TIME_SCALE,  # poll counts are judged in the emulator's (faster) time
        )
