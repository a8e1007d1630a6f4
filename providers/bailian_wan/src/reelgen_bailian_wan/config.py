"""The provider's own configuration: the `[providers.bailian_wan]` section of reelgen.toml.

The API key is never part of it: it comes from `DASHSCOPE_API_KEY` or the file named by
`api_key_file`, is read when a call needs it, and is passed to the SDK per call (never
set on the `dashscope` module, never logged, never stored).

Which endpoint a provider talks to, first match wins:

1. `emulator = true`: the bundled emulator, started in this process;
2. the `DASHSCOPE_HTTP_BASE_URL` environment variable (the SDK's own; the environment
   overrides files, as everywhere in reelgen);
3. `base_url`;
4. `region`'s documented base URL.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from reelgen.errors import AuthenticationError, ConfigError

from .capabilities import PROVIDER

__all__ = [
    "EMULATOR_API_KEY",
    "FLASH_REGIONS",
    "REGIONS",
    "WanConfig",
    "load_api_key",
    "parse_config",
]

#: Region id -> base URL. `{workspace}` is filled from the `workspace` setting.
REGIONS: dict[str, str] = {
    "cn-beijing": "https://dashscope.aliyuncs.com/api/v1",
    "ap-southeast-1": "https://dashscope-intl.aliyuncs.com/api/v1",
    "us-east-1": "https://dashscope-us.aliyuncs.com/api/v1",
    "eu-central-1": "https://{workspace}.eu-central-1.maas.aliyuncs.com/api/v1",
}
#: With a workspace, the documented (recommended) per-workspace host.
_WORKSPACE_REGIONS: dict[str, str] = {
    "ap-southeast-1": "https://{workspace}.ap-southeast-1.maas.aliyuncs.com/api/v1",
}
_ALIASES = {
    "beijing": "cn-beijing",
    "cn": "cn-beijing",
    "singapore": "ap-southeast-1",
    "intl": "ap-southeast-1",
    "virginia": "us-east-1",
    "us": "us-east-1",
    "frankfurt": "eu-central-1",
}
#: Regions whose rate tables list wan2.6-i2v-flash (reference section 6).
FLASH_REGIONS = ("cn-beijing", "ap-southeast-1")
#: Settings that moved to the core's `[limits.bailian_wan]` (their names there).
MOVED_TO_LIMITS = {"max_concurrency": "concurrency", "submit_rate": "submit_rate", "query_rate": "query_rate"}
#: What the bundled emulator is called with; never a real key.
EMULATOR_API_KEY = "sk-reelgen-emulator-placeholder"


def _positive(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    # The type (a whole number, a number) is the converter's check; this is the range.
    if value is not None and not (math.isfinite(value) and value > 0):
        kind = "a whole number" if attribute.type in (int, "int") else "a number"
        raise ValueError(f"{attribute.name} must be {kind} greater than 0, got {value!r}")


def _non_empty(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.strip():
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _region(value: str) -> str:
    region = _ALIASES.get(value.strip().lower(), value.strip().lower())
    if region not in REGIONS:
        known = ", ".join(REGIONS)
        raise ValueError(f"region {value!r} is not a DashScope region; use one of: {known}")
    return region


def _variable_name(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    # Never echo the value: a key pasted here by mistake must not reach an error message.
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(
            f"{attribute.name} must be the name of an environment variable (letters, digits, _), "
            "not the key itself: export the key under that name"
        )


@attrs.frozen(kw_only=True)
class WanConfig:
    """Validated provider settings. Every field is documented in docs/providers/bailian_wan.md."""

    region: str = attrs.field(default="cn-beijing", converter=_region)
    base_url: str | None = attrs.field(default=None, validator=_non_empty)
    workspace: str | None = attrs.field(default=None, validator=_non_empty)
    api_key_file: str | None = attrs.field(default=None, validator=_non_empty)
    #: The environment variable holding the key (another account's key under its own name,
    #: e.g. in `[accounts.studio-b]`); when it is unset, `api_key_file` is read.
    api_key_env: str = attrs.field(default="DASHSCOPE_API_KEY", validator=_variable_name)
    #: Seconds one HTTP call may take before it counts as failed.
    request_timeout: float = attrs.field(default=60.0, validator=_positive)
    #: Start the bundled DashScope emulator in this process and talk to it.
    emulator: bool = False
    #: The emulator's time scale (0.02: a two-minute generation takes 2.4 s).
    emulator_time_scale: float = attrs.field(default=0.02, validator=_positive)
    #: Multiplies every polling constant (priors, minimum and maximum intervals); for
    #: emulators that compress time. Defaults to `emulator_time_scale` with `emulator = true`.
    time_scale: float | None = attrs.field(default=None, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.region == "eu-central-1" and self.workspace is None and self.base_url is None:
            raise ConfigError(
                f"providers.{PROVIDER}.region eu-central-1 is served per workspace: set "
                f"providers.{PROVIDER}.workspace (or base_url)"
            )

    @property
    def clock_scale(self) -> float:
        """The factor applied to polling constants."""
        if self.time_scale is not None:
            return self.time_scale
        return self.emulator_time_scale if self.emulator else 1.0

    def base_url_for(self, environ: Mapping[str, str] | None = None) -> str:
        """The API base URL, without the emulator (which only knows its URL once started)."""
        environ = os.environ if environ is None else environ
        from_env = environ.get("DASHSCOPE_HTTP_BASE_URL", "").strip()
        if from_env:
            return from_env.rstrip("/")
        if self.base_url is not None:
            return self.base_url.strip().rstrip("/")
        template = REGIONS[self.region]
        if self.workspace is not None:
            template = _WORKSPACE_REGIONS.get(self.region, template)
        return template.format(workspace=self.workspace or "")

    def endpoint_overridden(self, environ: Mapping[str, str] | None = None) -> bool:
        """True when the endpoint is not the region's default (so region rules do not apply)."""
        environ = os.environ if environ is None else environ
        return self.emulator or bool(environ.get("DASHSCOPE_HTTP_BASE_URL", "").strip()) or self.base_url is not None


def parse_config(config: Mapping[str, Any]) -> WanConfig:
    """A `WanConfig` from the `[providers.bailian_wan]` mapping, structured by the core (as every
    provider's is): unknown keys and bad values are a `ConfigError` naming `providers.bailian_wan.KEY`."""
    from reelgen.provider import structure_provider_config

    moved = sorted(set(config) & set(MOVED_TO_LIMITS))
    if moved:
        raise ConfigError(
            "; ".join(
                f"providers.{PROVIDER}.{key} has moved: the core now enforces the account's limits for every "
                f"process using the key; set limits.{PROVIDER}.{MOVED_TO_LIMITS[key]} instead"
                for key in moved
            )
        )
    return structure_provider_config(WanConfig, config, provider=PROVIDER)


def load_api_key(config: WanConfig, environ: Mapping[str, str] | None = None) -> str:
    """The API key: the `api_key_env` variable (`DASHSCOPE_API_KEY`), else the `api_key_file`.
    Never logged or stored."""
    environ = os.environ if environ is None else environ
    key = environ.get(config.api_key_env, "").strip()
    if key:
        return key
    if config.api_key_file is not None:
        path = Path(config.api_key_file).expanduser()
        try:
            key = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise AuthenticationError(
                f"cannot read the DashScope API key file named by providers.{PROVIDER}.api_key_file "
                f"({str(path)!r}: {exc.strerror})",
                provider=PROVIDER,
            ) from None
        if key:
            return key
        raise AuthenticationError(f"the DashScope API key file {str(path)!r} is empty", provider=PROVIDER)
    raise AuthenticationError(
        f"no DashScope API key: set {config.api_key_env}, or name a file holding it in "
        f"providers.{PROVIDER}.api_key_file (or set providers.{PROVIDER}.emulator = true to try the emulator)",
        provider=PROVIDER,
    )
