"""The pipeline with Redis: down means refused before any provider call; jobs of every machine listed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

import reelgen
from reelgen.cluster.journal import redis_journal
from reelgen.config import ClusterConfig
from reelgen.errors import ConfigError
from reelgen.journal import JournalEntry, JournalError, Owner, new_entry_id
from tests.helpers.fake_provider import FakeProvider, Script
from tests.helpers.services import free_port
from tests.scale._processes import ROOT


async def test_a_redis_that_is_down_stops_a_generation_before_the_provider_is_called(config):
    provider = FakeProvider(Script(url="http://127.0.0.1:9/never.mp4"))
    config = config.evolve(cluster=ClusterConfig(redis=f"redis://127.0.0.1:{free_port()}/0"))
    request = reelgen.VideoRequest(prompt="a slow pan", duration=1, fps=10, size="64*64")
    with pytest.raises((JournalError, ConfigError), match="cannot reach Redis"):
        await reelgen.agenerate(request, provider, config=config)
    assert "submit" not in provider.calls  # nothing was paid


def test_jobs_list_shows_every_machine_s_jobs(redis_url, tmp_path):
    journal = redis_journal(redis_url, "reelgen")
    for host in ("render-1", "render-2"):
        journal.open(
            JournalEntry(
                id=new_entry_id(),
                provider="preview",
                model="preview-1",
                key=f"key-{host}",
                state="running",
                request={"prompt": f"a shot from {host}"},
                submitted_at=time.time(),
                owner=Owner(host=host, pid=1, started=None),
                heartbeat=time.time(),
            )
        )
    env = {**os.environ, "REELGEN_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    listed = subprocess.run(
        [sys.executable, "-m", "reelgen", "jobs", "list", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    text = json.dumps(json.loads(listed.stdout))
    assert "a shot from render-1" in text and "a shot from render-2" in text
