"""Prices as data: the declared wan2.6-i2v-flash table, config overrides, estimates, billed costs, `--max-cost`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import reelgen
from reelgen.config import Config, load_config
from reelgen.contract import VideoRequest
from reelgen.errors import ConfigError
from reelgen.pricing import Pricing, billed_cost, estimate, pricing_for
from reelgen_bailian_wan import create_provider
from reelgen_bailian_wan.capabilities import CAPABILITIES

IMAGE = "https://example.com/cat.jpg"


def _request(**changes: Any) -> VideoRequest:
    fields: dict[str, Any] = {"prompt": "a cat", "duration": 5, "size": "1280*720", "reference_image": IMAGE}
    fields.update(changes)
    return VideoRequest(**fields)


def _bailian(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"bailian_wan": options}


# The published figures (issue 13), per second: (region, tier, audio) -> (price, currency).
PUBLISHED = {
    ("ap-southeast-1", "720P", True): (0.05, "USD"),
    ("ap-southeast-1", "720P", False): (0.025, "USD"),
    ("ap-southeast-1", "1080P", True): (0.075, "USD"),
    ("ap-southeast-1", "1080P", False): (0.0375, "USD"),
    ("cn-beijing", "720P", True): (0.3, "CNY"),
    ("cn-beijing", "720P", False): (0.15, "CNY"),
    ("cn-beijing", "1080P", True): (0.5, "CNY"),
    ("cn-beijing", "1080P", False): (0.25, "CNY"),
}


@pytest.mark.parametrize(("region", "tier", "audio"), sorted(PUBLISHED))
def test_the_declared_table_is_the_published_one(region: str, tier: str, audio: bool) -> None:
    price, currency = PUBLISHED[(region, tier, audio)]
    provider = create_provider({"region": region})
    request = _request(duration=7, options=_bailian({"resolution": tier, "audio": audio}))
    cost = estimate(request, provider, Config())
    assert cost is not None
    assert (cost.amount, cost.currency, cost.tier, cost.audio) == (pytest.approx(7 * price), currency, tier, audio)
    assert "as of 2026-12-01" in cost.basis


def test_the_table_says_when_and_where_its_prices_come_from() -> None:
    pricing = CAPABILITIES.pricing
    assert isinstance(pricing, Pricing)
    assert pricing.as_of == "2026-12-01"
    assert "help.aliyun.com/zh/model-studio/models" in pricing.source
    assert "alibabacloud.com/help/en/model-studio/models" in pricing.source


def test_what_a_request_omits_is_priced_as_the_service_bills_it() -> None:
    provider = create_provider({})
    # No resolution option: the tier nearest the size (as the provider sends it); no audio option: audio on.
    assert estimate(_request(size="1920*1080"), provider, Config()).amount == pytest.approx(5 * 0.5)  # type: ignore[union-attr]
    assert estimate(_request(size="1280*720"), provider, Config()).amount == pytest.approx(5 * 0.3)  # type: ignore[union-attr]
    assert estimate(_request(size="1280*720"), provider, Config()).tier == "720P"  # type: ignore[union-attr]


def test_a_region_without_flash_has_no_price_rather_than_a_wrong_one() -> None:
    assert estimate(_request(), create_provider({"region": "us-east-1"}), Config()) is None


def test_config_overrides_the_declared_prices_for_the_regions_it_names(tmp_path: Path) -> None:
    (tmp_path / "reelgen.toml").write_text(
        """
[pricing.bailian_wan]
currency = "CNY"
regions = ["cn-beijing"]
as_of = "2027-01-15"
source = "https://help.aliyun.com/zh/model-studio/models"
rates = [{tier = "720P", audio = true, per_second = 0.4}, {tier = "720P", audio = false, per_second = 0.2}]
""",
        encoding="utf-8",
    )
    config = load_config(tmp_path / "reelgen.toml", environ={})
    beijing = estimate(_request(), create_provider({}), config)
    assert beijing is not None and beijing.amount == pytest.approx(2.0) and "2027-01-15" in beijing.basis
    # A tier the override does not list has no price (never the old one by accident).
    assert estimate(_request(options=_bailian({"resolution": "1080P"})), create_provider({}), config) is None
    # Singapore keeps its declared table.
    singapore = estimate(_request(), create_provider({"region": "singapore"}), config)
    assert singapore is not None and (singapore.amount, singapore.currency) == (pytest.approx(0.25), "USD")


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"rates": [{"tier": "720P", "per_second": 0.1}]}, "currency"),
        ({"currency": "CNY", "rates": [{"tier": "720P", "per_second": -1}]}, "per_second"),
        ({"currency": "CNY", "rates": [], "colour": "red"}, "colour"),
    ],
)
def test_a_bad_pricing_section_is_a_config_error_naming_it(section: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=r"pricing\.bailian_wan") as caught:
        pricing_for(create_provider({}), Config(pricing={"bailian_wan": section}))
    assert problem in str(caught.value)


def test_a_provider_without_declared_prices_needs_as_of_and_source_in_config() -> None:
    from reelgen_preview import PreviewProvider

    provider = PreviewProvider()
    config = Config(pricing={provider.name: {"currency": "EUR", "rates": [{"per_second": 0.01}]}})
    with pytest.raises(ConfigError, match="as_of"):
        pricing_for(provider, config)


def _result(usage: dict[str, Any], *, cached: bool = False) -> reelgen.VideoResult:
    return reelgen.VideoResult(
        video_url="file:///tmp/x.mp4",
        duration=5.0,
        fps=30.0,
        seed=1,
        size="1280*720",
        provider="bailian_wan",
        model="wan2.6-i2v-flash",
        sha256="0" * 64,
        bytes=10,
        cached=cached,
        usage=usage,
    )


def test_the_billed_cost_follows_the_usage_the_service_reported() -> None:
    provider = create_provider({})
    request = _request(duration=5)
    # The service billed 1080P silent, whatever the request said.
    billed = billed_cost(
        _result({"output_video_duration": 4.0, "SR": 1080, "audio": False}), provider, Config(), request
    )
    assert billed is not None and billed.amount == pytest.approx(4 * 0.25) and billed.tier == "1080P"
    # Usage that omits the tier and audio falls back to the request's.
    partial = billed_cost(_result({"output_video_duration": 5.0}), provider, Config(), request)
    assert partial is not None and partial.amount == pytest.approx(1.5)
    cached = billed_cost(_result({"output_video_duration": 5.0}, cached=True), provider, Config(), request)
    assert cached is not None and cached.amount == 0


@pytest.mark.dashscope_emulator(render_mode="still")
def test_generate_shows_the_estimate_and_max_cost_refuses_before_paying(dashscope_emulator, tmp_path) -> None:
    from PIL import Image

    Image.effect_noise((480, 270), 40).convert("RGB").save(tmp_path / "shot.jpg")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGEN_", "DASHSCOPE_"))}
    env.update(
        DASHSCOPE_HTTP_BASE_URL=dashscope_emulator.base_url,
        DASHSCOPE_API_KEY="sk-pricing-test-0123456789",
        REELGEN_PROVIDER="bailian_wan",
        REELGEN_STORAGE_URL=str(tmp_path / "videos"),
        REELGEN_CACHE_URL="none",
        REELGEN_JOBS_URL=f"sqlite:///{tmp_path / 'jobs.db'}",
        REELGEN_PROVIDERS__BAILIAN_WAN__TIME_SCALE="0.01",
    )
    command = [
        sys.executable,
        "-m",
        "reelgen",
        "generate",
        str(tmp_path / "shot.jpg"),
        "-p",
        "waves",
        "--duration",
        "4",
    ]
    refused = subprocess.run([*command, "--max-cost", "1"], capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 2
    assert "the estimate 1.2 CNY" in refused.stderr and "exceeds --max-cost 1" in refused.stderr
    assert dashscope_emulator.counters()["creates"] == 0

    done = subprocess.run(
        [*command, "--max-cost", "1.2", "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "estimate 1.2 CNY: 4 s x 0.3 CNY/s (720P, audio, cn-beijing)" in done.stderr
    assert "billed: 1.2 CNY: 4 s x 0.3 CNY/s" in done.stderr
    assert json.loads(done.stdout)["usage"]["output_video_duration"] == 4.0
    assert dashscope_emulator.counters()["creates"] == 1
