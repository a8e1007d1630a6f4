"""The kit's conduct checks on their own: secrets found, job data judged, memory measured, polls bounded."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pytest

from reelgen import ProviderJob, VideoRequest
from reelgen_contracts import Sandbox
from reelgen_contracts._conduct import POLL_SLACK, POLLS_PER_SECOND, check_job_data, check_polls, secret_values
from reelgen_contracts._resources import MEMORY_SLACK, ResourceWatch, memory_bound, time_bound
from reelgen_contracts.images import encode_image


def _harness(tmp_path: Path, config: dict[str, Any], sandbox: Sandbox | None = None) -> Any:
    return SimpleNamespace(name="p", provider_config=config, sandbox=sandbox, workdir=tmp_path)


def test_secrets_come_from_credential_keys_key_files_and_the_sandbox(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text("sk-from-a-file-123\n")
    config = {
        "api_key": "sk-inline-456789",
        "api_key_file": str(key_file),
        "base_url": "http://127.0.0.1:1",  # not a credential
        "token": "abc",  # too short to look for without false alarms
    }
    found = secret_values(_harness(tmp_path, config, Sandbox(secrets=("sk-sandbox-000111",))))
    assert {"sk-inline-456789", "sk-from-a-file-123", "sk-sandbox-000111"} <= set(found)
    assert "http://127.0.0.1:1" not in found and "abc" not in found


@pytest.mark.parametrize(
    ("data", "why"),
    [({"image": b"\x89PNG"}, "is not JSON"), ({"size": (640, 480)}, "does not survive JSON"), ({1: "a"}, "survive")],
)
def test_job_data_must_be_json_that_survives_a_round_trip(tmp_path: Path, data: dict[Any, Any], why: str) -> None:
    job = ProviderJob(provider="p", model="m", task_id="t", submitted_at=0.0, data=data)
    with pytest.raises(AssertionError, match=why):
        check_job_data(_harness(tmp_path, {}), [job])
    check_job_data(_harness(tmp_path, {}), [attrs.evolve(job, data={"size": [640, 480], "n": 1.5})])


def test_polls_are_bounded_by_the_generation_time_in_the_sandbox_time(tmp_path: Path) -> None:
    def gen(polls: int, elapsed: float) -> Any:
        return SimpleNamespace(calls=["validate", "submit"] + ["poll"] * polls, elapsed=elapsed)

    h = _harness(tmp_path, {})
    check_polls(h, gen(POLL_SLACK + int(POLLS_PER_SECOND * 2), 2.0))
    with pytest.raises(AssertionError, match="polled 500 times"):
        check_polls(h, gen(500, 1.0))
    fast = _harness(tmp_path, {}, Sandbox(time_scale=0.01))  # 1 s of wall time is 100 s of the service's
    check_polls(fast, gen(300, 1.0))


def test_memory_and_time_bounds_grow_with_the_request() -> None:
    small = VideoRequest(prompt="x", duration=1.0, fps=10.0, size="64*64")
    large = VideoRequest(prompt="x", duration=10.0, fps=30.0, size="1280*720")
    assert MEMORY_SLACK <= memory_bound(small) < memory_bound(large)
    image = encode_image(800, 600, "PNG")
    with_image = VideoRequest(prompt="x", duration=1.0, fps=10.0, size="64*64", reference_image=image)
    assert memory_bound(with_image) > memory_bound(small)
    assert 0 < time_bound(small) < time_bound(large)


def test_the_watch_sees_memory_grow_and_calls_the_breach_once() -> None:
    breaches: list[int] = []
    with ResourceWatch(32 * 2**20, on_breach=breaches.append, interval=0.01) as watch:
        held = b"\x01" * (96 * 2**20)  # resident: every page written
        time.sleep(0.1)
    del held
    if watch.growth is None:
        pytest.skip("this platform cannot measure resident memory")
    assert watch.growth >= 80 * 2**20
    assert len(breaches) == 1 and breaches[0] > 32 * 2**20
