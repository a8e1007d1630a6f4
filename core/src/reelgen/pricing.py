"""Prices as data: what a provider charges per output second, and what a request or result costs.

A provider declares `Capabilities.pricing`: one `PriceTable` per deployment (region and
currency), each a list of per-second `Rate`s by resolution tier and audio on/off, with
the date the prices were read and where. Prices change, so `[pricing.NAME]` in the
configuration replaces a provider's table (for every region, or for the regions it names):

```toml
[pricing.bailian_wan]
currency = "CNY"
regions = ["cn-beijing"]
as_of = "2027-01-15"
source = "https://help.aliyun.com/zh/model-studio/models"
rates = [
  {tier = "720P", audio = true, per_second = 0.3},
  {tier = "720P", audio = false, per_second = 0.15},
]
```

`estimate(request, provider, config)` prices a request before it is sent (the tier and
audio setting it will be billed at, times its seconds); `billed_cost(result, provider,
config)` prices what the provider reported it billed (`result.usage`). Both return None
when the provider declares no price for that case: an unknown price is never a zero one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from .contract import VideoRequest, VideoResult, parse_size
from .errors import ConfigError

if TYPE_CHECKING:
    from .capabilities import Capabilities
    from .config import Config
    from .provider import Provider

__all__ = [
    "Cost",
    "PriceTable",
    "Pricing",
    "Rate",
    "billed_cost",
    "estimate",
    "pricing_for",
    "region_of",
    "tier_of_usage",
]


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _text(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


@attrs.frozen(kw_only=True)
class Rate:
    """The price of one output second for a tier and audio setting (None: any)."""

    per_second: float = attrs.field(validator=_non_negative)
    tier: str | None = None
    audio: bool | None = None

    def matches(self, tier: str | None, audio: bool | None) -> bool:
        return (self.tier is None or self.tier == tier) and (self.audio is None or self.audio == audio)


def _rates(value: Any) -> tuple[Rate, ...]:
    return tuple(value)


def _regions(value: Any) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class PriceTable:
    """The rates of one deployment, in one currency. `regions` empty: every region."""

    currency: str = attrs.field(validator=_text)
    rates: tuple[Rate, ...] = attrs.field(converter=_rates)
    regions: tuple[str, ...] = attrs.field(default=(), converter=_regions)

    def rate_for(self, tier: str | None, audio: bool | None) -> Rate | None:
        return next((rate for rate in self.rates if rate.matches(tier, audio)), None)


def _tables(value: Any) -> tuple[PriceTable, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Pricing:
    """A provider's published prices, with when they were read (`as_of`, ISO date) and where.

    The tier and audio setting a request is billed at are read from the provider's options
    named `tier_option` and `audio_option` (their declared defaults apply when a request
    omits them; without a tier option, the tier nearest the request's size in pixels). What
    a result was billed for is read from its `usage` under the `usage_*` keys.
    """

    tables: tuple[PriceTable, ...] = attrs.field(converter=_tables)
    as_of: str = attrs.field(validator=_text)
    source: str = attrs.field(validator=_text)
    tier_option: str | None = None
    audio_option: str | None = None
    usage_seconds: str = "output_video_duration"
    usage_tier: str | None = None
    usage_audio: str | None = None
    #: Anything a reader should know (e.g. where the declared figures differ from a source).
    note: str = ""

    def table_for(self, region: str | None) -> PriceTable | None:
        """The table for `region`: the first naming it, else the first naming no region."""
        named = next((t for t in self.tables if region is not None and region in t.regions), None)
        return named or next((t for t in self.tables if not t.regions), None)


@attrs.frozen(kw_only=True)
class Cost:
    """An amount of money and how it was worked out (`basis`, for people)."""

    amount: float
    currency: str
    basis: str
    #: What was priced: the resolution tier and audio setting (None: not part of the price).
    tier: str | None = None
    audio: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"amount": round(self.amount, 6), "currency": self.currency, "basis": self.basis, "tier": self.tier}


def region_of(provider: Provider) -> str | None:
    """The deployment a provider instance talks to (its `region` attribute), if it has one."""
    region = getattr(provider, "region", None)
    return region if isinstance(region, str) and region else None


def _override(name: str, data: Mapping[str, Any], declared: Pricing | None) -> Pricing:
    """`[pricing.NAME]` applied over the declared pricing."""
    import cattrs

    converter = cattrs.Converter(forbid_extra_keys=True)
    fields = dict(data)
    as_of = fields.pop("as_of", None)
    source = fields.pop("source", None)
    try:
        table = converter.structure(fields, PriceTable)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            problem = "; ".join(cattrs.transform_error(exc, path=f"pricing.{name}"))
        else:
            problem = str(exc)
        raise ConfigError(
            f"pricing.{name}: {problem} (expected currency, rates = [{{tier, audio, per_second}}], "
            "optional regions, as_of and source)"
        ) from exc
    if declared is None:
        if not as_of or not source:
            raise ConfigError(f"pricing.{name}: give as_of (the date the prices were read) and source (where)")
        return Pricing(tables=(table,), as_of=str(as_of), source=str(source))
    kept = tuple(t for t in declared.tables if table.regions and not set(t.regions) <= set(table.regions))
    return attrs.evolve(
        declared,
        tables=(table, *kept),
        as_of=str(as_of or declared.as_of),
        source=str(source or f"configuration [pricing.{name}]"),
    )


def pricing_for(provider: Provider, config: Config) -> Pricing | None:
    """The provider's pricing, with `[pricing.NAME]` from the configuration applied."""
    declared = getattr(provider.capabilities, "pricing", None)
    overrides = getattr(config, "pricing", {}) or {}
    if provider.name in overrides:
        return _override(provider.name, overrides[provider.name], declared)
    return declared if isinstance(declared, Pricing) else None


def _nearest_tier(request: VideoRequest, capabilities: Capabilities) -> str | None:
    tiers = capabilities.resolution_tiers
    if not tiers:
        return None
    width, height = parse_size(request.size)
    pixels = width * height
    return min(tiers, key=lambda tier: abs(math.log(pixels / tier.pixels))).name


def _option(request: VideoRequest, provider: Provider, name: str | None) -> Any:
    if name is None:
        return None
    value = request.options_for(provider.name).get(name)
    if value is None:
        spec = provider.capabilities.options.get(name)
        value = spec.default if spec is not None else None
    return value


def _price(
    pricing: Pricing, provider: Provider, *, seconds: float, tier: str | None, audio: bool | None
) -> Cost | None:
    region = region_of(provider)
    table = pricing.table_for(region)
    if table is None:
        return None
    rate = table.rate_for(tier, audio)
    if rate is None:
        return None
    details = ", ".join(
        part for part in (tier, None if audio is None else ("audio" if audio else "silent"), region) if part
    )
    basis = (
        f"{seconds:g} s x {rate.per_second:g} {table.currency}/s"
        + (f" ({details})" if details else "")
        + f", {provider.name} prices as of {pricing.as_of}"
    )
    return Cost(amount=seconds * rate.per_second, currency=table.currency, basis=basis, tier=tier, audio=audio)


def estimate(request: VideoRequest, provider: Provider, config: Config) -> Cost | None:
    """What `request` will cost with `provider`, before it is sent (None: no declared price)."""
    pricing = pricing_for(provider, config)
    if pricing is None:
        return None if provider.capabilities.billed else Cost(amount=0.0, currency="", basis="not billed")
    tier = _option(request, provider, pricing.tier_option) or _nearest_tier(request, provider.capabilities)
    audio = _option(request, provider, pricing.audio_option)
    return _price(
        pricing,
        provider,
        seconds=request.duration,
        tier=None if tier is None else str(tier),
        audio=None if audio is None else bool(audio),
    )


def _usage_tier(value: Any, capabilities: Capabilities) -> str | None:
    """A tier as reported ("720P", 720, "720") matched to a declared tier name."""
    if value is None:
        return None
    text = str(value).strip().upper()
    names = {tier.name.upper(): tier.name for tier in capabilities.resolution_tiers}
    return names.get(text) or names.get(text + "P") or str(value)


def tier_of_usage(usage: Mapping[str, Any], provider: Provider, pricing: Pricing | None) -> str | None:
    """The resolution tier a provider reported billing (its `usage`), as a declared tier name."""
    if pricing is None or pricing.usage_tier is None:
        return None
    return _usage_tier(usage.get(pricing.usage_tier), provider.capabilities)


def billed_cost(
    result: VideoResult, provider: Provider, config: Config, request: VideoRequest | None = None
) -> Cost | None:
    """What the provider billed for `result`, from its `usage` (the request fills what usage omits).

    A cached result was not billed again: it costs 0.
    """
    if result.cached:
        return Cost(amount=0.0, currency="", basis="served from the cache: not billed again")
    pricing = pricing_for(provider, config)
    if pricing is None:
        return None if provider.capabilities.billed else Cost(amount=0.0, currency="", basis="not billed")
    usage = result.usage
    seconds = usage.get(pricing.usage_seconds)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        seconds = request.duration if request is not None else result.duration
    tier = _usage_tier(usage.get(pricing.usage_tier) if pricing.usage_tier else None, provider.capabilities)
    if tier is None and request is not None:
        tier = _option(request, provider, pricing.tier_option) or _nearest_tier(request, provider.capabilities)
    audio = usage.get(pricing.usage_audio) if pricing.usage_audio else None
    if audio is None and request is not None:
        audio = _option(request, provider, pricing.audio_option)
    return _price(
        pricing,
        provider,
        seconds=float(seconds),
        tier=None if tier is None else str(tier),
        audio=None if audio is None else bool(audio),
    )
