"""Typed attrs converters (mypy's attrs plugin cannot see through `converter=dict`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["plain_dict", "string_list"]


def plain_dict(value: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict copy of any mapping."""
    return dict(value)


def string_list(value: Iterable[str]) -> list[str]:
    return [str(item) for item in value]
