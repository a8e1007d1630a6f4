"""Several accounts of one provider in one batch: `[accounts.NAME]` and a row's `account`.

Two emulators stand for two DashScope accounts, each at its real limit (5 tasks at once;
a 6th create is refused with 429). Real bailian_wan provider, real dashscope SDK.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import reelgen
from reelgen.batches import plan_batch
from reelgen.config import CacheConfig, Config, JobsConfig, StorageConfig, load_config
from reelgen.errors import ConfigError
from reelgen.manifest import ManifestRow, read_manifest
from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig
from reelgen_bailian_wan.emulator.state import key_id

SCALE = 0.05  # a 5 s 720P task runs about 4.5 s: long enough to overlap
KEY_A = "sk-account-a-0123456789abcdef"
KEY_B = "sk-account-b-0123456789abcdef"


@pytest.fixture
def accounts():
    settings = EmulatorConfig(time_scale=SCALE, render_mode="still", concurrency_policy="reject")
    with DashScopeEmulator(settings) as first, DashScopeEmulator(settings) as second:
        yield first, second


@pytest.fixture
def shot(tmp_path: Path) -> str:
    path = tmp_path / "shot.jpg"
    Image.effect_noise((480, 270), 40).convert("RGB").save(path, quality=80)
    return str(path)


def _config(tmp_path: Path, first: Any, second: Any) -> Config:
    key_file = tmp_path / "studio-b.key"
    key_file.write_text(KEY_B + "\n", encoding="utf-8")
    return Config(
        provider="bailian_wan",
        storage=StorageConfig(url=str(tmp_path / "videos")),
        cache=CacheConfig(url="none"),
        jobs=JobsConfig(url=f"sqlite:///{tmp_path / 'jobs.db'}"),
        providers={"bailian_wan": {"base_url": first.base_url, "time_scale": SCALE}},
        accounts={"studio-b": {"provider": "bailian_wan", "base_url": second.base_url, "api_key_file": str(key_file)}},
        deadline=120,
    )


def _rows(shot: str, count: int) -> list[ManifestRow]:
    return [
        ManifestRow(
            id=f"r{n}",
            request=reelgen.VideoRequest(
                prompt=f"waves, take {n}", duration=5, size="1280*720", seed=n, reference_image=shot
            ),
            account="studio-b" if n % 2 else None,
            line=n + 1,
        )
        for n in range(count)
    ]


def _in_flight(emulator: DashScopeEmulator) -> int:
    statuses = emulator.counters()["tasks_by_status"]
    return int(statuses.get("PENDING", 0)) + int(statuses.get("RUNNING", 0))


def test_two_accounts_of_one_provider_each_run_at_their_own_limit(accounts, tmp_path, shot, monkeypatch) -> None:
    first, second = accounts
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY_A)
    monkeypatch.setenv("STUDIO_B_DASHSCOPE_KEY", KEY_B)
    config = _config(tmp_path, first, second)
    account = {**config.accounts["studio-b"], "api_key_env": "STUDIO_B_DASHSCOPE_KEY"}
    config = config.evolve(accounts={"studio-b": account})
    peaks = {"first": 0, "second": 0, "both": 0}
    stop = threading.Event()

    def watch() -> None:  # what the two services see, not what the batch says of itself
        while not stop.is_set():
            a, b = _in_flight(first), _in_flight(second)
            peaks["first"], peaks["second"] = max(peaks["first"], a), max(peaks["second"], b)
            peaks["both"] = max(peaks["both"], a + b)
            stop.wait(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        outcomes = dict(reelgen.batch(_rows(shot, 20), config=config, results=tmp_path / "out.jsonl"))
    finally:
        stop.set()
        watcher.join()
    assert all(isinstance(result, reelgen.VideoResult) for result in outcomes.values()), outcomes
    # Each row went to its own account's service, once.
    assert sorted(task["input"]["prompt"] for task in first.tasks()) == sorted(
        f"waves, take {n}" for n in range(0, 20, 2)
    )
    assert sorted(task["input"]["prompt"] for task in second.tasks()) == sorted(
        f"waves, take {n}" for n in range(1, 20, 2)
    )
    # ... with its own key.
    assert {task["api_key_id"] for task in first.tasks()} == {key_id(KEY_A)}
    assert {task["api_key_id"] for task in second.tasks()} == {key_id(KEY_B)}
    # Neither account was pushed past its limit (a 6th task would have been refused) ...
    assert first.counters()["throttled"] == 0 and second.counters()["throttled"] == 0
    assert peaks["first"] <= 5 and peaks["second"] <= 5
    # ... and the two ran side by side: more than one account's worth at once.
    assert peaks["both"] > 5, peaks


def test_an_unknown_account_is_a_row_problem_naming_the_fix(tmp_path, shot) -> None:
    manifest = tmp_path / "shots.jsonl"
    rows = [
        {"id": "a", "prompt": "waves", "reference_image": shot},
        {"id": "b", "prompt": "waves", "reference_image": shot, "account": "studio-c"},
        {"id": "c", "prompt": "waves", "reference_image": shot, "account": ""},
    ]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    read, problems = read_manifest(manifest)
    assert [problem.field for problem in problems] == ["account"] and problems[0].id == "c"
    config = Config(
        provider="preview",
        storage=StorageConfig(url=str(tmp_path / "videos")),
        accounts={"studio-b": {"provider": "preview"}},
    )
    plan = plan_batch(read, config=config)
    assert [planned.row.id for planned in plan.rows] == ["a"]
    (problem,) = plan.problems
    assert problem.id == "b" and problem.field == "account"
    assert "add [accounts.studio-c] with provider" in problem.message and "studio-b" in problem.message


def test_an_account_is_configured_in_toml_and_its_secrets_refused(tmp_path) -> None:
    path = tmp_path / "reelgen.toml"
    path.write_text(
        '[accounts.studio-b]\nprovider = "bailian_wan"\nregion = "ap-southeast-1"\napi_key_file = "~/b.key"\n',
        encoding="utf-8",
    )
    config = load_config(path, environ={})
    provider, applied = config.for_account("studio-b")
    assert provider == "bailian_wan"
    assert applied.provider_config("bailian_wan") == {"region": "ap-southeast-1", "api_key_file": "~/b.key"}
    path.write_text('[accounts.studio-b]\nprovider = "bailian_wan"\napi_key = "sk-secret"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"accounts\.studio-b\.api_key looks like a secret") as caught:
        load_config(path, environ={})
    assert "sk-secret" not in str(caught.value)
    path.write_text('[accounts.studio-b]\nregion = "ap-southeast-1"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"accounts\.studio-b\.provider: name the provider"):
        load_config(path, environ={}).for_account("studio-b")


def test_a_row_whose_account_is_another_providers_is_refused_before_anything_is_paid(tmp_path, shot) -> None:
    """The same check for a planned row and for a queued task a worker receives."""
    config = Config(
        provider="bailian_wan",
        storage=StorageConfig(url=str(tmp_path / "videos")),
        accounts={"studio-b": {"provider": "bailian_wan"}},
    )
    with pytest.raises(ConfigError, match=r"account 'studio-b' is for provider 'bailian_wan', not 'preview'"):
        config.for_account("studio-b", provider="preview")
    row = ManifestRow(
        id="r",
        request=reelgen.VideoRequest(prompt="waves", reference_image=shot),
        provider="preview",
        account="studio-b",
    )
    plan = plan_batch([row], config=config)
    assert [(problem.field, problem.message) for problem in plan.problems] == [
        ("account", "account 'studio-b' is for provider 'bailian_wan', not 'preview'")
    ]


def test_jobs_resume_polls_a_job_of_another_account_with_that_accounts_key(accounts, tmp_path, shot) -> None:
    first, second = accounts
    config = _config(tmp_path, first, second)
    (tmp_path / "reelgen.toml").write_text(
        f"""provider = "bailian_wan"
deadline = 120
[storage]
url = "{tmp_path / "videos"}"
[cache]
url = "none"
[jobs]
url = "sqlite:///{tmp_path / "jobs.db"}"
[providers.bailian_wan]
base_url = "{first.base_url}"
time_scale = {SCALE}
[accounts.studio-b]
provider = "bailian_wan"
base_url = "{second.base_url}"
api_key_file = "{config.accounts["studio-b"]["api_key_file"]}"
""",
        encoding="utf-8",
    )
    manifest = tmp_path / "b.jsonl"
    row = {"id": "b1", "prompt": "waves", "duration": 5, "reference_image": shot, "account": "studio-b"}
    manifest.write_text(json.dumps(row) + "\n", encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "DASHSCOPE_API_KEY": KEY_A, "HOME": str(tmp_path)}

    def reelgen_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reelgen", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )

    # The row's job is created under studio-b by a process that then dies (as a crash leaves it) ...
    script = (
        "import asyncio, sys, reelgen\n"
        "from reelgen.batches import plan_batch\n"
        "from reelgen.config import load_config\n"
        "from reelgen.manifest import read_manifest\n"
        "config = load_config()\n"
        "(planned,) = plan_batch(read_manifest(sys.argv[1])[0], config=config).rows\n"
        "print(asyncio.run(reelgen.submit(planned.row.request, planned.provider, config=config)).id)\n"
    )
    created = subprocess.run(
        [sys.executable, "-c", script, str(manifest)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert created.returncode == 0, created.stderr
    job_id = created.stdout.strip()
    assert second.counters()["creates"] == 1 and first.counters()["creates"] == 0
    # ... and `reelgen jobs resume` finds studio-b's key for it: the first account has no such task.
    resumed = reelgen_cli("jobs", "resume", job_id)
    assert resumed.returncode == 0, resumed.stderr
    assert second.counters()["queries"] >= 1 and first.counters()["queries"] == 0
    assert KEY_B not in resumed.stdout + resumed.stderr


def test_an_account_that_resolves_to_the_same_key_is_refused_before_anything_is_paid(
    accounts, tmp_path, shot, monkeypatch
) -> None:
    first, _ = accounts
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY_A)  # the SDK's variable wins over a key file
    (tmp_path / "b.key").write_text(KEY_B, encoding="utf-8")
    config = Config(
        provider="bailian_wan",
        storage=StorageConfig(url=str(tmp_path / "videos")),
        cache=CacheConfig(url="none"),
        jobs=JobsConfig(url=f"sqlite:///{tmp_path / 'jobs.db'}"),
        providers={"bailian_wan": {"base_url": first.base_url}},
        accounts={"studio-b": {"provider": "bailian_wan", "api_key_file": str(tmp_path / "b.key")}},
    )
    plan = plan_batch(_rows(shot, 4), config=config)
    assert [planned.row.id for planned in plan.rows] == ["r0", "r2"]
    assert {problem.id for problem in plan.problems} == {"r1", "r3"}
    assert "same endpoint and key as the [providers.bailian_wan] settings" in plan.problems[0].message
    assert KEY_A not in plan.problems[0].message and KEY_B not in plan.problems[0].message
    # Its own variable gives it its own key: then it is an account of its own.
    monkeypatch.setenv("STUDIO_B_DASHSCOPE_KEY", KEY_B)
    account = {**config.accounts["studio-b"], "api_key_env": "STUDIO_B_DASHSCOPE_KEY"}
    fixed = plan_batch(_rows(shot, 4), config=config.evolve(accounts={"studio-b": account}))
    assert not fixed.problems and len(fixed.rows) == 4
    assert first.counters()["creates"] == 0


def test_a_key_pasted_into_api_key_env_is_refused_without_echoing_it(tmp_path) -> None:
    path = tmp_path / "reelgen.toml"
    path.write_text('[providers.bailian_wan]\napi_key_env = "sk-0123456789abcdef"\n', encoding="utf-8")
    config = load_config(path, environ={})
    with pytest.raises(ConfigError, match="must be the name of an environment variable") as caught:
        _provider(config)
    assert "sk-0123456789abcdef" not in str(caught.value)


def _provider(config: Config) -> Any:
    from reelgen._registry import get_provider

    return get_provider("bailian_wan", config=config)
