"""Structuring a provider's `[providers.NAME]` section into the attrs class it declares.

One path for every provider, so every provider's configuration errors read the same way
and name the key: `providers.NAME.key must be a whole number, got str 'x'`. The converter
is the configuration's own (strict about TOML types: no `"5"` for 5, no `1` for true).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from .errors import ConfigError

__all__ = ["structure_provider_config"]

T = TypeVar("T")

# Mark problems inside cattrs' message list: unknown keys (spelled per key), and a
# ConfigError raised by the class itself (passed on as it is).
_EXTRA = "\x1f"
_AS_IS = "\x1e"


def structure_provider_config(config_class: type[T], data: Mapping[str, Any] | None, *, provider: str) -> T:
    """`data` (the provider's section) as an instance of `config_class`, or a `ConfigError` naming the key.

    Types are checked by the converter, unknown keys are refused, and a validator or
    `__attrs_post_init__` may raise `ValueError` whose message starts with the field's
    name (`"workers must be at least 1, got 0"`): it is reported as
    `providers.NAME.workers must be ...`. A `ConfigError` raised there passes unchanged.
    """
    import cattrs

    from .config import _converter, _format_problem

    where = f"providers.{provider}"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a table of settings, got {type(data).__name__}")

    def describe(exc: BaseException, type_: Any) -> str:
        if isinstance(exc, cattrs.ForbiddenExtraKeysError):
            known = ", ".join(field.name for field in attrs.fields(exc.cl)) if attrs.has(exc.cl) else ""
            return f"{_EXTRA}{','.join(sorted(exc.extra_fields))}{_EXTRA}{known or 'none'}"
        if isinstance(exc, ConfigError):
            return f"{_AS_IS}{exc}"
        return _format_problem(exc, type_)

    try:
        return _converter.structure(dict(data), config_class)
    except cattrs.BaseValidationError as exc:
        lines = cattrs.transform_error(exc, path=where, format_exception=describe)
        problems = [_spell(line, where, config_class) for line in lines]
        raise ConfigError("; ".join(problems)) from None
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(_name_the_key(str(exc), where, config_class)) from None


def _spell(line: str, where: str, config_class: type) -> str:
    message, _, path = line.rpartition(" @ ")
    if message.startswith(_AS_IS):
        return message[1:]
    if message.startswith(_EXTRA):
        keys, known = message[1:].split(_EXTRA)
        names = ", ".join(f"{path}.{key}" for key in keys.split(","))
        return f"unknown setting{'s' if ',' in keys else ''} {names} (known: {known})"
    if path == where:  # raised by the class (a validator, a converter, __attrs_post_init__)
        return _name_the_key(message, where, config_class)
    return f"{path} {message}"


def _name_the_key(message: str, where: str, config_class: type) -> str:
    fields = [field.name for field in attrs.fields(config_class)] if attrs.has(config_class) else []
    for name in sorted(fields, key=len, reverse=True):
        if message.startswith((f"{name} ", f"'{name}' ")):
            return f"{where}.{name} {message.split(' ', 1)[1]}"
    return f"{where}: {message}"
