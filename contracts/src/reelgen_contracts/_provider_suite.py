"""The suite as `pytest --reelgen-provider NAME` runs it (collected by the plugin, not by name).

The provider is the installed one, built by its registered factory from reelgen's
configuration, run against its sandbox fixture `reelgen_sandbox_NAME` when one exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ._harness import ProviderBuilder
from .sandbox import Sandbox
from .suite import ProviderContract


def _parse(value: str) -> Any:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


class TestProviderContract(ProviderContract):
    """Every contract test, for each `--reelgen-provider`."""

    @pytest.fixture
    def provider_factory(self, reelgen_provider_name: str) -> ProviderBuilder:
        from reelgen.plugins import provider_entries

        return provider_entries()[reelgen_provider_name].factory

    @pytest.fixture
    def provider_config(self, reelgen_provider_name: str, request: pytest.FixtureRequest) -> Mapping[str, Any]:
        from reelgen.config import load_config

        config = load_config().provider_config(reelgen_provider_name)
        for item in request.config.getoption("reelgen_config", default=[]):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise pytest.UsageError(f"--reelgen-config {item!r}: expected KEY=VALUE")
            config[key.strip()] = _parse(value.strip())
        return config

    @pytest.fixture
    def sandbox(self, reelgen_provider_name: str, request: pytest.FixtureRequest) -> Sandbox | None:
        try:
            value = request.getfixturevalue(f"reelgen_sandbox_{reelgen_provider_name}")
        except pytest.FixtureLookupError:
            return None
        return Sandbox.coerce(value)
