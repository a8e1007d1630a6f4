"""`reelgen.BaseProvider` and the registry: defaults, and one structuring path for every provider's settings."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reelgen
from reelgen import BaseProvider, Capabilities, ConfigError, JobStatus, ProviderJob, VideoRequest
from reelgen._registry import clear_instances, get_provider, provider_infos
from reelgen.config import Config
from reelgen.plugins import get_plugin_manager, reset

CAPS = Capabilities(model="tiny-1", duration_range=(1, 10), cancel="none")


def _at_least_one(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value}")


@attrs.frozen(kw_only=True)
class TinyConfig:
    endpoint: str = "http://127.0.0.1:9"
    workers: int = attrs.field(default=2, validator=_at_least_one)
    rate: float | None = None
    verbose: bool = False


class Tiny(BaseProvider[TinyConfig]):
    name = "tiny"
    capabilities = CAPS
    config_class = TinyConfig

    async def submit(self, request: VideoRequest) -> ProviderJob:
        return ProviderJob(provider=self.name, model="tiny-1", task_id="t1", submitted_at=0.0)

    async def poll(self, job: ProviderJob) -> JobStatus:
        return JobStatus(state="running")


class Bare(BaseProvider[None]):
    name = "bare"
    capabilities = CAPS


def _job() -> ProviderJob:
    return ProviderJob(provider="tiny", model="tiny-1", task_id="t1", submitted_at=0.0)


def test_a_minimal_provider_is_a_provider_with_the_shared_defaults() -> None:
    provider = Tiny()
    assert isinstance(provider, reelgen.Provider)
    assert provider.validate(VideoRequest(prompt="p")) == []
    assert asyncio.run(provider.cancel(_job())) is False
    assert asyncio.run(provider.aclose()) is None
    assert provider.account_id == ""
    assert provider.config == TinyConfig()


@given(st.integers(-5, 10_000), st.floats(0, 1e6, allow_nan=False))
def test_the_default_poll_schedule_backs_off_and_is_capped(attempt: int, elapsed: float) -> None:
    provider = Bare()
    delay = provider.poll_delay(_job(), attempt, elapsed)
    assert math.isfinite(delay)
    assert provider.poll_interval <= delay <= provider.poll_interval_max
    assert provider.poll_delay(_job(), attempt + 1, elapsed) >= delay


def test_a_settings_instance_is_taken_as_it_is() -> None:
    settings = TinyConfig(workers=7)
    assert Tiny(settings).config is settings


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"workers": "4"}, r"^providers\.tiny\.workers must be a whole number, got str '4'$"),
        ({"workers": 2.5}, r"^providers\.tiny\.workers must be a whole number"),
        ({"workers": 0}, r"^providers\.tiny\.workers must be at least 1, got 0$"),
        ({"rate": "fast"}, r"^providers\.tiny\.rate must be a number"),
        ({"verbose": 1}, r"^providers\.tiny\.verbose must be true or false"),
        ({"endpoint": 5}, r"^providers\.tiny\.endpoint must be a string"),
        ({"colour": "blue"}, r"^unknown setting providers\.tiny\.colour \(known: endpoint, workers, rate, verbose\)$"),
    ],
)
def test_every_settings_error_names_the_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Tiny(section)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Tiny({"workers": "x", "rate": "y", "a": 1, "b": 2})
    text = str(caught.value)
    for key in ("providers.tiny.workers", "providers.tiny.rate", "providers.tiny.a", "providers.tiny.b"):
        assert key in text


def test_a_provider_without_settings_refuses_any() -> None:
    assert Bare().config is None and Bare({}).config is None
    with pytest.raises(ConfigError, match=r"unknown setting providers\.bare\.x: the bare provider takes no settings"):
        Bare({"x": 1})


class _Plugin:
    @reelgen.hookimpl
    def reelgen_register_providers(self, register: Any) -> None:
        # Registered under another name than the class says: the config section is the registration's.
        register("tiny_alias", Tiny)


@pytest.fixture
def registered() -> Iterator[None]:
    reset()
    clear_instances()
    get_plugin_manager().register(_Plugin(), name="test-registry-tiny")
    yield
    reset()
    clear_instances()


def test_the_registry_structures_the_section_of_the_registered_name(registered: None) -> None:
    config = Config(providers={"tiny_alias": {"workers": 3, "rate": 1}})
    provider = get_provider("tiny_alias", config=config)
    assert isinstance(provider, Tiny)
    assert provider.config == TinyConfig(workers=3, rate=1.0)


def test_the_registry_reports_bad_settings_by_key(registered: None) -> None:
    config = Config(providers={"tiny_alias": {"workers": "many"}})
    with pytest.raises(ConfigError, match=r"^providers\.tiny_alias\.workers must be a whole number"):
        get_provider("tiny_alias", config=config)
    info = next(info for info in provider_infos(config) if info.name == "tiny_alias")
    assert info.capabilities is None and "providers.tiny_alias.workers" in (info.error or "")


def test_preview_declares_its_settings_and_names_the_key() -> None:
    from reelgen_preview.provider import PreviewConfig, PreviewProvider

    assert PreviewProvider.config_class is PreviewConfig
    with pytest.raises(ConfigError, match=r"^providers\.preview\.workers must be a whole number >= 1, got 0$"):
        PreviewProvider({"workers": 0})
    with pytest.raises(ConfigError, match=r"^unknown setting providers\.preview\.colour"):
        PreviewProvider({"colour": "red"})
