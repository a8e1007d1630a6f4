"""What an emulator instance is told: timing, limits, validation bounds and faults.

Both classes are frozen attrs classes validated on construction, so a bad option
fails when the emulator is configured, not on the first request.

Times are seconds. `time_scale` multiplies the *task lifecycle* (queue and run
time) only; validity windows (`url_ttl_seconds`, `task_ttl_seconds`, ...) and the
network-level `Faults.slow_seconds` are wall-clock seconds as given, so a test that
sets `url_ttl_seconds=2` gets two real seconds whatever its time scale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

__all__ = ["MODEL", "EmulatorConfig", "Faults"]

MODEL = "wan2.6-i2v-flash"

ConcurrencyPolicy = Literal["queue", "reject"]
RenderMode = Literal["animated", "still"]


def _probability(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a probability in [0, 1], got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be > 0 (or None to disable), got {value!r}")


# Statuses `create_reply_5xx` may answer with (408 too: clients treat it like a 5xx).
REPLY_STATUSES = (408, 500, 502, 503, 504)


@attrs.frozen(kw_only=True)
class Faults:
    """Seeded, deterministic fault injection. Every probability defaults to 0 (off).

    Each kind of decision draws from its own random stream derived from `seed`, so
    the faults a create sees do not depend on how often a client polled. Per-task
    decisions (`task_failed`, `early_expiry`) are keyed by the task's creation
    order: the n-th task of a run meets the same fate in every run.

    The `create_reply_*` faults create the task first and then lose its reply: a
    TCP reset, a stall of `create_reply_stall_seconds` (wall clock, past a client's
    read timeout) before the normal reply, or an HTTP `create_reply_status` error.
    A client cannot tell them from "no task was created" without listing its tasks.
    """

    seed: int = 0
    create_429: float = attrs.field(default=0.0, validator=_probability)
    create_5xx: float = attrs.field(default=0.0, validator=_probability)
    # Ambiguous creates: the task IS created (and will be billed), then the reply is lost.
    create_reply_reset: float = attrs.field(default=0.0, validator=_probability)
    create_reply_stall: float = attrs.field(default=0.0, validator=_probability)
    create_reply_5xx: float = attrs.field(default=0.0, validator=_probability)
    create_reply_status: int = attrs.field(default=500, validator=attrs.validators.in_(REPLY_STATUSES))
    create_reply_stall_seconds: float = attrs.field(default=30.0, validator=_non_negative)
    query_503: float = attrs.field(default=0.0, validator=_probability)
    query_504: float = attrs.field(default=0.0, validator=_probability)
    query_reset: float = attrs.field(default=0.0, validator=_probability)
    task_failed: float = attrs.field(default=0.0, validator=_probability)
    failed_code: str = "InternalError"
    slow_seconds: float = attrs.field(default=0.0, validator=_non_negative)
    slow_probability: float = attrs.field(default=0.0, validator=_probability)
    truncate_download: float = attrs.field(default=0.0, validator=_probability)
    corrupt_download: float = attrs.field(default=0.0, validator=_probability)
    early_expiry: float = attrs.field(default=0.0, validator=_probability)

    def __attrs_post_init__(self) -> None:
        for group in (
            ("create_429", "create_5xx", "create_reply_reset", "create_reply_stall", "create_reply_5xx"),
            ("query_503", "query_504", "query_reset"),
            ("truncate_download", "corrupt_download"),
        ):
            total = sum(getattr(self, name) for name in group)
            if total > 1.0 + 1e-9:
                raise ValueError(f"the probabilities {', '.join(group)} add up to {total} > 1")

    @property
    def active(self) -> bool:
        """True when any fault can fire."""
        return any(getattr(self, field.name) > 0 for field in attrs.fields(Faults) if field.name not in _SETTINGS)

    @classmethod
    def parse(cls, spec: str | Mapping[str, object] | None) -> Faults:
        """Build from `"create_429=0.1,query_503=0.2,seed=7"` or a mapping (env/CLI form)."""
        if not spec:
            return cls()
        if isinstance(spec, str):
            items: dict[str, object] = {}
            for part in spec.replace(";", ",").split(","):
                part = part.strip()
                if not part:
                    continue
                name, sep, value = part.partition("=")
                if not sep:
                    raise ValueError(f"fault {part!r} is not NAME=VALUE")
                items[name.strip().replace("-", "_")] = value.strip()
        else:
            items = dict(spec)
        return cls(**_coerce(cls, items))


# Fields that tune a fault rather than switch one on.
_SETTINGS = ("seed", "failed_code", "slow_seconds", "create_reply_status", "create_reply_stall_seconds")


def _coerce(cls: type, items: Mapping[str, object]) -> dict[str, Any]:
    """Convert string values (from env or CLI) to each field's declared type."""
    fields = {field.name: field for field in attrs.fields(cls)}
    out: dict[str, Any] = {}
    for name, value in items.items():
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ValueError(f"unknown fault {name!r}; known: {known}")
        default = fields[name].default
        if isinstance(value, str) and not isinstance(default, str):
            value = int(value) if isinstance(default, int) else float(value)
        out[name] = value
    return out


def _keys(value: Iterable[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    keys = frozenset(value)
    if not keys or any(not key for key in keys):
        raise ValueError("api_keys must be None (accept any key) or a set of non-empty keys")
    return keys


@attrs.frozen(kw_only=True)
class EmulatorConfig:
    """How an emulated DashScope account behaves. Defaults follow the reference."""

    # Auth: None accepts any non-empty Bearer key; otherwise only these keys.
    api_keys: frozenset[str] | None = attrs.field(default=None, converter=_keys, repr=False)
    model: str = MODEL

    # Lifecycle (simulated seconds, multiplied by time_scale).
    queue_seconds: float = attrs.field(default=1.0, validator=_non_negative)
    run_seconds: float | None = attrs.field(default=None, validator=_non_negative)
    time_scale: float = attrs.field(default=1.0, validator=_non_negative)

    # Validity windows (wall-clock seconds, not scaled).
    url_ttl_seconds: float = attrs.field(default=86400.0, validator=_positive)
    task_ttl_seconds: float = attrs.field(default=86400.0, validator=_positive)
    upload_ttl_seconds: float = attrs.field(default=172800.0, validator=_positive)
    policy_ttl_seconds: float = attrs.field(default=300.0, validator=_positive)

    # Parameters and inputs.
    strict_parameters: bool = False
    min_image_side: int = attrs.field(default=240, validator=_positive)
    max_image_side: int = attrs.field(default=8000, validator=_positive)
    max_image_bytes: int = attrs.field(default=10 * 1024 * 1024, validator=_positive)
    max_audio_bytes: int = attrs.field(default=15 * 1024 * 1024, validator=_positive)
    reject_alpha: bool = True
    max_prompt_chars: int = attrs.field(default=1500, validator=_positive)
    max_negative_prompt_chars: int = attrs.field(default=500, validator=_positive)
    fetch_timeout_seconds: float = attrs.field(default=5.0, validator=_positive)

    # Account limits (reference §6); None disables each.
    submit_rps: float | None = attrs.field(default=5, validator=_positive)
    max_concurrent: int | None = attrs.field(default=5, validator=_positive)
    query_qps: float | None = attrs.field(default=20, validator=_positive)
    upload_qps: float | None = attrs.field(default=100, validator=_positive)
    concurrency_policy: ConcurrencyPolicy = attrs.field(
        default="queue", validator=attrs.validators.in_(("queue", "reject"))
    )

    # Output.
    render_mode: RenderMode = attrs.field(default="animated", validator=attrs.validators.in_(("animated", "still")))
    cache_dir: str | None = None

    # Timestamps are formatted in this zone (the service runs in Beijing, UTC+8).
    utc_offset_hours: float = 8.0

    faults: Faults = attrs.field(factory=Faults, validator=attrs.validators.instance_of(Faults))

    def __attrs_post_init__(self) -> None:
        if self.min_image_side > self.max_image_side:
            raise ValueError("min_image_side must not exceed max_image_side")

    def evolve(self, **changes: Any) -> EmulatorConfig:
        """A copy with some options changed (attrs.evolve, keeping validation)."""
        return attrs.evolve(self, **changes)
