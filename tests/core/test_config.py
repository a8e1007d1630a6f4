"""Configuration: file < environment < overrides, where the file is found, and bad files refused
with a message naming the key and the file."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from reelgen.config import Config, config_path, load_config
from reelgen.errors import ConfigError

FILE = """
provider = "from_file"
deadline = 100
[cache]
url = "none"
[storage]
url = "file-videos"
max_bytes = 1000
[jobs]
url = "sqlite:///file-jobs.db"
[providers.bailian_wan]
region = "cn-beijing"
prompt_extend = false
"""

#: Environment values: what a shell can hold (no NUL), at most one line.
env_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"), max_size=30)


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, an empty user config dir, no REELGEN_* variables."""
    for variable in [v for v in os.environ if v.startswith("REELGEN_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Iterator[Path]:
    yield write(tmp_path / "conf" / "reelgen.toml", FILE)


# --- where the file comes from -----------------------------------------------------------------------


def test_no_file_gives_the_defaults(isolated: Path) -> None:
    config = load_config()
    assert config.source is None and config_path() is None
    assert config.provider is None and config.deadline == 1800.0
    assert config.storage.url == "output/videos" and config.storage.max_bytes == 2 * 1024**3
    assert config.cache.enabled and config.cache.url.startswith("sqlite:///")
    assert config.providers == {}


def test_user_config_dir_is_the_fallback(isolated: Path) -> None:
    user_file = write(isolated / "xdg" / "reelgen" / "reelgen.toml", 'provider = "from_user_dir"')
    config = load_config()
    assert config.provider == "from_user_dir" and config.source == str(user_file)


def test_user_config_dir_follows_home(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(isolated / "home"))
    write(isolated / "home" / ".config" / "reelgen" / "reelgen.toml", 'provider = "from_home"')
    assert load_config().provider == "from_home"


def test_reelgen_config_beats_the_user_config_dir(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "xdg" / "reelgen" / "reelgen.toml", 'provider = "from_user_dir"')
    named = write(isolated / "named.toml", 'provider = "from_named"')
    monkeypatch.setenv("REELGEN_CONFIG", str(named))
    config = load_config()
    assert config.provider == "from_named" and config.source == str(named)


def test_working_directory_file_beats_reelgen_config(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated / "xdg" / "reelgen" / "reelgen.toml", 'provider = "from_user_dir"')
    monkeypatch.setenv("REELGEN_CONFIG", str(write(isolated / "named.toml", 'provider = "from_named"')))
    local = write(isolated / "work" / "reelgen.toml", 'provider = "from_cwd"')
    config = load_config()
    assert config.provider == "from_cwd" and config.source == str(local.resolve())
    assert config_path() == local.resolve()


def test_reelgen_config_is_read_from_the_given_environ(isolated: Path) -> None:
    named = write(isolated / "named.toml", 'provider = "from_named"')
    assert load_config(environ={"REELGEN_CONFIG": str(named)}).provider == "from_named"


def test_reelgen_config_naming_a_missing_file_is_an_error(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELGEN_CONFIG", str(isolated / "missing.toml"))
    with pytest.raises(ConfigError, match=r"REELGEN_CONFIG.*missing\.toml.*does not exist"):
        load_config()


def test_explicit_path_that_does_not_exist_is_an_error(isolated: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(isolated / "nope.toml", environ={})


def test_file_values_are_read(config_file: Path) -> None:
    config = load_config(config_file, environ={})
    assert config.provider == "from_file" and config.deadline == 100.0
    assert not config.cache.enabled
    assert (config.storage.url, config.storage.max_bytes) == ("file-videos", 1000)
    assert config.jobs.url == "sqlite:///file-jobs.db"
    assert config.provider_config("bailian_wan") == {"region": "cn-beijing", "prompt_extend": False}
    assert config.provider_config("other") == {}
    assert config.source == str(config_file)


# --- precedence ---------------------------------------------------------------------------------------


def test_environment_beats_file_and_overrides_beat_both(config_file: Path) -> None:
    environ = {
        "REELGEN_PROVIDER": "from_env", "REELGEN_DEADLINE": "50", "REELGEN_CACHE_URL": "sqlite:///env.db",
        "REELGEN_STORAGE_URL": "s3://bucket/env", "REELGEN_STORAGE_MAX_BYTES": "2000", "REELGEN_JOBS_URL": "sqlite:///j.db",
        "REELGEN_PROVIDERS__BAILIAN_WAN__REGION": "ap-southeast-1",
    }  # fmt: skip
    config = load_config(config_file, environ=environ)
    assert (config.provider, config.deadline, config.cache.url) == ("from_env", 50.0, "sqlite:///env.db")
    assert (config.storage.url, config.storage.max_bytes, config.jobs.url) == (
        "s3://bucket/env",
        2000,
        "sqlite:///j.db",
    )
    # Merged key by key: the file's other provider settings survive.
    assert config.provider_config("bailian_wan") == {"region": "ap-southeast-1", "prompt_extend": False}

    overridden = load_config(
        config_file,
        environ=environ,
        overrides={
            "provider": "from_flag",
            "storage": {"url": "flag-videos"},
            "providers": {"bailian_wan": {"region": "x"}},
        },
    )
    assert (overridden.provider, overridden.storage.url) == ("from_flag", "flag-videos")
    assert overridden.storage.max_bytes == 2000 and overridden.deadline == 50.0
    assert overridden.provider_config("bailian_wan") == {"region": "x", "prompt_extend": False}


@given(value=env_text)
def test_provider_from_the_environment_is_taken_verbatim(value: str) -> None:
    # "1" or "true" stay strings: REELGEN_PROVIDER is a name, never parsed as TOML.
    assert load_config(Path(os.devnull), environ={"REELGEN_PROVIDER": value}).provider == value


@given(provider=env_text, flag=env_text)
def test_an_override_always_wins(provider: str, flag: str) -> None:
    config = load_config(Path(os.devnull), environ={"REELGEN_PROVIDER": provider}, overrides={"provider": flag})
    assert config.provider == flag


@given(
    # "__" separates name from key, so neither may contain it or start or end with "_".
    name=st.from_regex(r"[A-Za-z]([A-Za-z0-9_]{0,9}[A-Za-z0-9])?", fullmatch=True),
    key=st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,10}", fullmatch=True),
    value=st.integers() | st.booleans() | st.floats(allow_nan=False),
)
def test_provider_settings_from_the_environment_are_typed(name: str, key: str, value: Any) -> None:
    assume("__" not in name and not any(s in key.lower() for s in ("key", "secret", "token", "password")))
    raw = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    config = load_config(Path(os.devnull), environ={f"REELGEN_PROVIDERS__{name}__{key}": raw})
    got = config.provider_config(name.lower())[key.lower()]
    assert type(got) is type(value) and (got == value or math.isinf(value))


@given(value=env_text)
def test_provider_settings_that_are_not_toml_stay_strings(value: str) -> None:
    import tomllib

    try:
        tomllib.loads(f"v = {value}")
    except tomllib.TOMLDecodeError:
        config = load_config(Path(os.devnull), environ={"REELGEN_PROVIDERS__X__REGION": value})
        assert config.provider_config("x") == {"region": value}


def test_quoted_environment_values_are_strings() -> None:
    config = load_config(Path(os.devnull), environ={"REELGEN_PROVIDERS__X__NAME": '"42"'})
    assert config.provider_config("x") == {"name": "42"}


@pytest.mark.parametrize("variable", ["REELGEN_PROVIDERS__X", "REELGEN_PROVIDERS____KEY", "REELGEN_PROVIDERS__X__"])
def test_malformed_provider_variables_are_ignored(variable: str) -> None:
    assert load_config(Path(os.devnull), environ={variable: "1"}).providers == {}


@given(st.floats(min_value=1e-3, max_value=1e9) | st.integers(1, 10**9))
def test_deadline_from_the_environment(value: float) -> None:
    assert load_config(Path(os.devnull), environ={"REELGEN_DEADLINE": repr(value)}).deadline == float(value)


@pytest.mark.parametrize("value", ["0", "-5", "abc", "nan", "inf", "true", "[1]"])
def test_bad_deadline_from_the_environment_is_blamed_on_the_environment(config_file: Path, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(config_file, environ={"REELGEN_DEADLINE": value})
    message = str(info.value)
    assert "deadline" in message and "environment" in message
    assert not message.startswith(str(config_file))  # the file is fine


# --- bad files ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key",
    [
        ("provider = 5", "provider"),
        ("provider = true", "provider"),
        ('deadline = "1.5"', "deadline"),
        ("deadline = true", "deadline"),
        ("deadline = -1", "deadline"),
        ("deadline = 0", "deadline"),
        ("deadline = nan", "deadline"),
        ("deadline = inf", "deadline"),
        ("[storage]\nmax_bytes = 1.5", "max_bytes"),
        ('[storage]\nmax_bytes = "10"', "max_bytes"),
        ("[storage]\nmax_bytes = 0", "max_bytes"),
        ("[storage]\nurl = 5", "url"),
        ("[cache]\nurl = []", "url"),
        ("[cache]\nfoo = 1", "foo"),
        ("bogus = 1", "bogus"),
        ("source = 'x'", "source"),
        ("providers = 5", "providers"),
        ("providers = [1]", "providers"),
        ("[providers]\nbailian_wan = 3", "bailian_wan"),
        ("cache = 'none'", "cache"),
        ("[storage.options]\n'' = 1\n[jobs]\nurl = 1", "url"),
    ],
)
def test_bad_file_is_refused_naming_the_key_and_the_file(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert str(path) in message and key in message, message


@pytest.mark.parametrize("text", ["provider = ", "[cache\nurl='x'", "provider = 'a'\nprovider = 'b'", "\x00"])
def test_invalid_toml_is_refused_naming_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path, environ={})
    assert str(path) in str(info.value)


def test_unreadable_files_are_refused_naming_the_file(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('provider = "caf\u00e9"'.encode("latin-1"))
    for path, fragment in ((latin1, "UTF-8"), (tmp_path, "cannot be read")):
        with pytest.raises(ConfigError, match=fragment) as info:
            load_config(path, environ={})
        assert str(path) in str(info.value)


@given(
    key=st.sampled_from(
        ["api_key", "API_KEY", "apikey", "secret", "client_secret", "token", "access_token", "password"]
    ),
    secret=st.from_regex(r"sk-[a-f0-9]{32}", fullmatch=True),
)
def test_secrets_in_the_file_are_refused_without_echoing_them(key: str, secret: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory) / "reelgen.toml", f'[providers.bailian_wan]\n{key} = "{secret}"\n')
        with pytest.raises(ConfigError) as info:
            load_config(path, environ={})
    message = str(info.value)
    assert f"providers.bailian_wan.{key}" in message and "environment variable" in message and str(path) in message
    assert secret not in message


def test_secrets_in_the_environment_are_refused_without_echoing_them() -> None:
    secret = "sk-0123456789abcdef0123456789abcdef"
    with pytest.raises(ConfigError) as info:
        load_config(Path(os.devnull), environ={"REELGEN_PROVIDERS__BAILIAN_WAN__API_KEY": secret})
    assert "environment" in str(info.value) and secret not in str(info.value)


def test_a_key_file_setting_is_not_a_secret(tmp_path: Path) -> None:
    path = write(tmp_path / "reelgen.toml", '[providers.bailian_wan]\napi_key_file = "~/.dashscope/key"\n')
    assert load_config(path, environ={}).provider_config("bailian_wan") == {"api_key_file": "~/.dashscope/key"}


def test_config_is_frozen_and_evolves() -> None:
    config = Config()
    changed = config.evolve(provider="preview")
    assert changed.provider == "preview" and config.provider is None
    with pytest.raises(AttributeError):
        config.provider = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "url, enabled", [("none", False), ("NONE", False), ("off", False), ("", False), ("sqlite:///c.db", True)]
)
def test_cache_can_be_disabled(url: str, enabled: bool) -> None:
    assert load_config(Path(os.devnull), environ={"REELGEN_CACHE_URL": url}).cache.enabled is enabled
