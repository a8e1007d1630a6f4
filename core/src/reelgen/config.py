"""Configuration: `reelgen.toml`, then the environment, then CLI flags (each overrides the last).

The file is `./reelgen.toml`, else the file named by `REELGEN_CONFIG`, else
`reelgen.toml` in the user config dir. Environment variables:

| variable | sets |
|---|---|
| `REELGEN_PROVIDER` | `provider` |
| `REELGEN_CACHE_URL` | `cache.url` |
| `REELGEN_STORAGE_URL` | `storage.url` |
| `REELGEN_STORAGE_MAX_BYTES` | `storage.max_bytes` |
| `REELGEN_JOBS_URL` | `jobs.url` |
| `REELGEN_DEADLINE` | `deadline` (seconds) |
| `REELGEN_QUEUE_TIMEOUT` | `queue_timeout` (seconds) |
| `REELGEN_REDIS_URL` | `cluster.redis` |
| `REELGEN_PROVIDERS__<NAME>__<KEY>` | `providers.<name>.<key>` (value parsed as TOML, else a string) |

Secrets do not belong here: providers read their keys from the environment or a key
file, and `Config` never holds them.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "CacheConfig",
    "ClusterConfig",
    "Config",
    "JobsConfig",
    "StorageConfig",
    "config_path",
    "default_cache_url",
    "is_disabled",
    "load_config",
    "parse_value",
]

_SECRET_KEYS = ("api_key", "apikey", "secret", "token", "password")
#: Settings that name where a secret is (a key file, an environment variable), never hold it.
_NAMES_A_SECRET = ("_file", "_env")
_DISABLED = frozenset({"none", "off", "false", ""})


def is_disabled(url: str | None) -> bool:
    """The one rule for a switched-off setting (`cache.url`, `jobs.url`): none, off, false or empty."""
    return url is None or url.strip().lower() in _DISABLED


def default_cache_url() -> str:
    from platformdirs import user_cache_dir

    return "sqlite:///" + str(Path(user_cache_dir("reelgen")) / "cache.db")


def default_jobs_url() -> str:
    from platformdirs import user_state_dir

    return "sqlite:///" + str(Path(user_state_dir("reelgen")) / "jobs.db")


def _positive_int(_: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{attribute.name} must be a whole number greater than 0, got {value!r}")


def _positive_number(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{attribute.name} must be a finite number greater than 0, got {value!r}")


@attrs.frozen(kw_only=True)
class CacheConfig:
    #: `sqlite:///path/to/cache.db`, or `none` to disable caching.
    url: str = attrs.field(factory=default_cache_url)

    @property
    def enabled(self) -> bool:
        return not is_disabled(self.url)


@attrs.frozen(kw_only=True)
class JobsConfig:
    #: The job journal (`sqlite:///path/jobs.db`), or `off` to keep none (no single-flight,
    #: no recovery after a crash: paid jobs can then only be found at the provider).
    url: str = attrs.field(factory=default_jobs_url)

    @property
    def enabled(self) -> bool:
        return not is_disabled(self.url)


@attrs.frozen(kw_only=True)
class ClusterConfig:
    #: `redis://host:6379/0`: the governor, the job journal and the cache are shared through
    #: this Redis, and `reelgen worker` takes its queue from it (None or `off`: all local).
    redis: str | None = None
    #: Prefix of every Redis key reelgen writes (deployments can share one Redis).
    namespace: str = "reelgen"
    #: Seconds a worker may be silent before its unacknowledged messages go to another.
    requeue_after: float = attrs.field(default=60.0, validator=_positive_number)

    @property
    def enabled(self) -> bool:
        return not is_disabled(self.redis)


@attrs.frozen(kw_only=True)
class StorageConfig:
    #: Any fsspec URL or a local directory.
    url: str = "output/videos"
    #: Largest video accepted, in bytes (2 GiB).
    max_bytes: int = attrs.field(default=2 * 1024**3, validator=_positive_int)
    #: Extra keyword arguments for the fsspec filesystem (e.g. endpoint_url for S3).
    options: dict[str, Any] = attrs.field(factory=dict)
    #: Write `NAME.json` (the request and the result) beside each stored `NAME.mp4`.
    sidecar: bool = False


@attrs.frozen(kw_only=True)
class Config:
    """The whole configuration. `providers` maps a provider name to its own settings."""

    provider: str | None = None
    #: Overall deadline for one generation, in seconds (submit to stored file).
    deadline: float = attrs.field(default=1800.0, validator=_positive_number)
    #: Longest a job may wait at the provider before it starts running, in seconds (None: no limit).
    queue_timeout: float | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_positive_number),  # type: ignore[arg-type]
    )
    cache: CacheConfig = attrs.field(factory=CacheConfig)
    storage: StorageConfig = attrs.field(factory=StorageConfig)
    jobs: JobsConfig = attrs.field(factory=JobsConfig)
    cluster: ClusterConfig = attrs.field(factory=ClusterConfig)
    providers: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    #: `[limits.NAME]`: overrides of a provider's declared account limits (`concurrency`,
    #: `submit_rate`, `query_rate`); `reelgen.governor.limits_for` checks and merges them.
    limits: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    #: `[pricing.NAME]`: a provider's price table, replacing the declared one (prices change);
    #: `reelgen.pricing.pricing_for` checks and applies it.
    pricing: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    #: `[accounts.NAME]`: another credential (key file, endpoint, region) of a provider, named
    #: so that batch rows can choose it (`"account": "NAME"`). `provider = "..."` says whose;
    #: every other key is one of that provider's settings, over `[providers.PROVIDER]`. Each
    #: account has its own limits, so its own governor.
    accounts: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    #: Where the file settings came from (None: defaults only).
    source: str | None = None

    def provider_config(self, name: str) -> dict[str, Any]:
        return dict(self.providers.get(name, {}))

    def account(self, name: str) -> tuple[str, dict[str, Any]]:
        """The provider of `[accounts.NAME]` and its settings over that provider's (ConfigError if unknown)."""
        section = self.accounts.get(name)
        if section is None:
            known = ", ".join(sorted(self.accounts)) or "none is configured"
            raise ConfigError(
                f'no account {name!r}: add [accounts.{name}] with provider = "..." and its settings '
                f"(e.g. api_key_file) to the configuration (accounts: {known})"
            )
        provider = section.get("provider")
        if not isinstance(provider, str) or not provider.strip():
            raise ConfigError(f'accounts.{name}.provider: name the provider this account is for, e.g. "bailian_wan"')
        return provider.strip(), {key: value for key, value in section.items() if key != "provider"}

    def for_account(self, name: str, *, provider: str | None = None) -> tuple[str, Config]:
        """The provider of `[accounts.NAME]` and this configuration with the account's settings
        applied. With `provider` (what a row or queued task names too), a ConfigError unless
        the account is that provider's."""
        owner, settings = self.account(name)
        if provider is not None and provider != owner:
            raise ConfigError(f"account {name!r} is for provider {owner!r}, not {provider!r}")
        providers = dict(self.providers)
        providers[owner] = {**providers.get(owner, {}), **settings}
        return owner, self.evolve(providers=providers)

    def evolve(self, **changes: Any) -> Config:
        return attrs.evolve(self, **changes)


_converter = cattrs.Converter(forbid_extra_keys=True)


class _WrongType(TypeError):
    """A value of the wrong TOML type (cattrs alone would coerce it: `str(5)`, `float("1.5")`)."""


def _exactly(kind: type, *accepted: type) -> Any:
    names = {str: "a string", bool: "true or false", int: "a whole number", float: "a number"}

    def check(value: Any, _: Any) -> Any:
        if not isinstance(value, accepted) or (isinstance(value, bool) and kind is not bool):
            raise _WrongType(f"must be {names[kind]}, got {type(value).__name__} {value!r}")
        return kind(value)

    return check


for _kind, _accepted in ((str, (str,)), (bool, (bool,)), (int, (int,)), (float, (int, float))):
    _converter.register_structure_hook(_kind, _exactly(_kind, *_accepted))


def _format_problem(exc: BaseException, type_: Any) -> str:
    # Our own messages (wrong type, attrs validators) already say what is wrong and how to fix it.
    if isinstance(exc, (_WrongType, ValueError)) and exc.args:
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def config_path(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file in effect, or None."""
    local = (cwd or Path.cwd()) / "reelgen.toml"
    if local.is_file():
        return local
    named = (os.environ if environ is None else environ).get("REELGEN_CONFIG")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"REELGEN_CONFIG names {str(path)!r}, which does not exist")
        return path
    from platformdirs import user_config_dir

    user = Path(user_config_dir("reelgen")) / "reelgen.toml"
    return user if user.is_file() else None


def parse_value(raw: str) -> Any:
    """A setting given as text (environment, `--option KEY=VALUE`): a TOML value
    (`true`, `3`, `0.5`, `"text"`) when it parses as one, else the text itself."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    simple = {
        "REELGEN_PROVIDER": ("provider",),
        "REELGEN_DEADLINE": ("deadline",),
        "REELGEN_QUEUE_TIMEOUT": ("queue_timeout",),
        "REELGEN_CACHE_URL": ("cache", "url"),
        "REELGEN_STORAGE_URL": ("storage", "url"),
        "REELGEN_STORAGE_MAX_BYTES": ("storage", "max_bytes"),
        "REELGEN_JOBS_URL": ("jobs", "url"),
        "REELGEN_REDIS_URL": ("cluster", "redis"),
    }
    for variable, path in simple.items():
        if variable in environ:
            value: Any = environ[variable]
            if path[-1] in ("deadline", "queue_timeout", "max_bytes"):
                value = parse_value(value)
            _set(data, path, value)
    for variable, raw in environ.items():
        if variable.startswith("REELGEN_PROVIDERS__"):
            parts = variable[len("REELGEN_PROVIDERS__") :].split("__")
            if len(parts) == 2 and all(parts):
                _set(data, ("providers", parts[0].lower(), parts[1].lower()), parse_value(raw))
    return data


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _reject_secrets(data: Mapping[str, Any], where: str) -> None:
    for table in ("providers", "accounts"):
        sections = data.get(table, {})
        if not isinstance(sections, Mapping):
            continue  # structuring reports the wrong type, naming the key
        for name, section in sections.items():
            if isinstance(section, Mapping):
                for key in section:
                    if any(secret in key.lower() for secret in _SECRET_KEYS) and not key.lower().endswith(
                        _NAMES_A_SECRET
                    ):
                        raise ConfigError(
                            f"{where}: {table}.{name}.{key} looks like a secret; reelgen does not read secrets "
                            "from its configuration: set the provider's environment variable or use a key file "
                            f"({table}.{name}.api_key_file)"
                        )


def _structure(data: Mapping[str, Any], where: str) -> Config:
    try:
        return _converter.structure(dict(data), Config)
    except cattrs.BaseValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, path="config", format_exception=_format_problem))
        raise ConfigError(f"{where}: {problems}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read the config file, apply environment variables, then `overrides` (CLI flags)."""
    environ = os.environ if environ is None else environ
    file_path = Path(path).expanduser() if path is not None else config_path(environ=environ)
    data: dict[str, Any] = {}
    where = "configuration"
    if file_path is not None:
        where = str(file_path)
        try:
            data = tomllib.loads(file_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {where!r} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: not valid TOML ({exc})") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{where}: not valid TOML (TOML files are UTF-8: {exc})") from exc
        except OSError as exc:
            raise ConfigError(f"config file {where!r} cannot be read ({exc.strerror or exc})") from exc
        _reject_secrets(data, where)
        if "source" in data:
            raise ConfigError(f"{where}: unknown key 'source'")
        data["source"] = str(file_path)
    # The file on its own first, so that its mistakes are blamed on it and the
    # environment's on the environment.
    config = _structure(data, where)
    env = _env_overrides(environ)
    _reject_secrets(env, "environment")
    if not env and not overrides:
        return config
    data = _merge(_merge(data, env), overrides or {})
    return _structure(data, "REELGEN_* environment variables or overrides")
