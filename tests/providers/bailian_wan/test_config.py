"""Provider configuration: keys, regions, endpoint precedence, and the API key's handling."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reelgen.config import load_config
from reelgen.errors import AuthenticationError, ConfigError
from reelgen_bailian_wan import WanConfig, create_provider, parse_config
from reelgen_bailian_wan.config import REGIONS, load_api_key


def test_defaults() -> None:
    config = parse_config({})
    assert config.region == "cn-beijing"
    assert config.base_url_for({}) == "https://dashscope.aliyuncs.com/api/v1"
    assert config.clock_scale == 1.0


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        ({"region": "beijing"}, "https://dashscope.aliyuncs.com/api/v1"),
        ({"region": "ap-southeast-1"}, "https://dashscope-intl.aliyuncs.com/api/v1"),
        ({"region": "singapore", "workspace": "ws1"}, "https://ws1.ap-southeast-1.maas.aliyuncs.com/api/v1"),
        ({"region": "virginia"}, "https://dashscope-us.aliyuncs.com/api/v1"),
        ({"region": "eu-central-1", "workspace": "ws9"}, "https://ws9.eu-central-1.maas.aliyuncs.com/api/v1"),
        ({"base_url": "http://proxy:8080/api/v1/"}, "http://proxy:8080/api/v1"),
    ],
)
def test_regions_map_to_their_documented_base_urls(settings, url) -> None:
    assert parse_config(settings).base_url_for({}) == url


def test_the_sdks_environment_variable_overrides_the_file() -> None:
    config = parse_config({"base_url": "http://from-config/api/v1"})
    environ = {"DASHSCOPE_HTTP_BASE_URL": "http://from-env/api/v1"}
    assert config.base_url_for(environ) == "http://from-env/api/v1"
    assert config.endpoint_overridden(environ) and not parse_config({}).endpoint_overridden({})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"region": "mars-1"}, "not a DashScope region"),
        ({"emulator": "yes"}, "emulator must be true or false"),
        ({"time_scale": 0}, "time_scale"),
        ({"base_url": ""}, "base_url"),
        ({"colour": "blue"}, "unknown setting"),
        ({"region": "eu-central-1"}, "workspace"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_key(settings, message) -> None:
    with pytest.raises(ConfigError, match=message):
        create_provider(settings)


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "region": st.sampled_from([*sorted(REGIONS), "beijing", "singapore", "virginia"]),
            "request_timeout": st.floats(0.1, 600),
            "emulator": st.booleans(),
            "emulator_time_scale": st.floats(0.001, 10),
            "workspace": st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True),
        },
    )
)
def test_valid_settings_always_build_a_provider_offline(settings) -> None:
    if settings.get("region") == "eu-central-1" and "workspace" not in settings:
        settings["workspace"] = "ws"
    provider = create_provider(settings)
    assert provider.config == WanConfig(**settings)
    assert getattr(provider.endpoint, "emulator", None) is None  # nothing started by building it


def test_the_key_comes_from_the_environment_then_the_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    config = parse_config({"api_key_file": str(key_file)})
    assert load_api_key(config, {"DASHSCOPE_API_KEY": "sk-from-env"}) == "sk-from-env"
    assert load_api_key(config, {}) == "sk-from-file"
    with pytest.raises(AuthenticationError, match="DASHSCOPE_API_KEY"):
        load_api_key(parse_config({}), {})
    with pytest.raises(AuthenticationError, match="cannot read"):
        load_api_key(parse_config({"api_key_file": str(tmp_path / "missing")}), {})
    key_file.write_text("  \n")
    with pytest.raises(AuthenticationError, match="empty"):
        load_api_key(config, {})


def test_keys_are_refused_in_the_configuration_and_never_kept(tmp_path: Path, monkeypatch) -> None:
    toml = tmp_path / "reelgen.toml"
    toml.write_text('[providers.bailian_wan]\napi_key = "sk-secret-in-file"\n')
    with pytest.raises(ConfigError, match="looks like a secret"):
        load_config(toml, environ={})
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-secret-in-env-123")
    provider = create_provider({})
    assert "sk-secret-in-env-123" not in repr(provider) + repr(provider.config) + repr(vars(provider))


def test_environment_settings_reach_the_factory(monkeypatch) -> None:
    config = load_config(
        None,
        environ={
            "REELGEN_PROVIDERS__BAILIAN_WAN__REGION": "singapore",
            "REELGEN_PROVIDERS__BAILIAN_WAN__TIME_SCALE": "0.5",
        },
    )
    provider = create_provider(config.provider_config("bailian_wan"))
    assert provider.config.region == "ap-southeast-1" and provider.config.clock_scale == 0.5
