"""Values the strategies and the invalid cases share: the contract's bounds, `InvalidRequest`.

A module of its own so that `strategies` (the public strategies) and `_invalid` (the ways
to break a request) both build on it without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from reelgen.capabilities import OptionSpec
    from reelgen.contract import VideoRequest

__all__ = ["MAX_SEED", "MAX_SIDE", "InvalidRequest", "requirement_value", "truthy_value"]

#: The contract's own bounds (reelgen.contract keeps them private): seeds are 0..2**63-1,
#: no side above 16384.
MAX_SEED = 2**63 - 1
MAX_SIDE = 16384


def requirement_value(spec: OptionSpec, text: str) -> Any:
    """The value `spec` takes for `requires` text: `"other=text"`, or a set (truthy) value for bare `"other"`."""
    if not text:
        return truthy_value(spec)
    if spec.type == "bool":
        return text.strip().lower() in ("true", "1", "yes")
    if spec.type == "int":
        return int(text)
    if spec.type == "float":
        return float(text)
    return text


def truthy_value(spec: OptionSpec) -> Any:
    """A valid value of `spec` that counts as set (truthy), or None if it has none."""
    if spec.choices is not None:
        return next((c for c in spec.choices if c), None)
    if spec.type == "bool":
        return True
    if spec.type == "str":
        return spec.default or None
    low = spec.minimum if spec.minimum is not None else -math.inf
    high = spec.maximum if spec.maximum is not None else math.inf
    for candidate in (1, high, low):
        if math.isfinite(candidate) and low <= candidate <= high and candidate:
            return int(candidate) if spec.type == "int" and float(candidate).is_integer() else candidate
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"... ({len(text)} chars)"


@attrs.frozen(kw_only=True, repr=False)
class InvalidRequest:
    """A request broken in exactly one field.

    `stage="construct"`: `VideoRequest(**fields)` itself raises `ValidationError`.
    `stage="capabilities"`: the request is well formed, but the provider cannot take it;
    validation must raise `ValidationError` before anything is sent.
    """

    field: str
    reason: str
    fields: Mapping[str, Any]
    stage: Literal["construct", "capabilities"]

    def build(self) -> VideoRequest:
        from reelgen.contract import VideoRequest

        return VideoRequest(**dict(self.fields))

    def __repr__(self) -> str:
        return (
            f"InvalidRequest({self.stage}: {self.field} — {self.reason}; "
            f"{self.field}={_short(self.fields.get(self.field))})"
        )
