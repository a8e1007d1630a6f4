"""Where the provider's calls go: an `Endpoint` names the base URL and API key for the next call.

The provider takes one and never builds a test double itself (as an HTTP client takes a
transport): `ServiceEndpoint` is the real DashScope service from the configuration; the
plugin factory hands the provider `reelgen_bailian_wan.emulated.EmulatorEndpoint` instead
when `emulator = true`.
"""

from __future__ import annotations

from typing import Protocol

from .config import WanConfig, load_api_key

__all__ = ["Endpoint", "ServiceEndpoint"]


class Endpoint(Protocol):
    def resolve(self) -> tuple[str, str]:
        """(base URL, API key) for the next call. The key is read when needed and never kept."""
        ...

    async def aclose(self) -> None:
        """Release what the endpoint holds (an emulator it started)."""
        ...


class ServiceEndpoint:
    """The DashScope service the configuration names (environment, `base_url`, or `region`)."""

    def __init__(self, config: WanConfig) -> None:
        self.config = config

    def resolve(self) -> tuple[str, str]:
        return self.config.base_url_for(), load_api_key(self.config)

    async def aclose(self) -> None:
        return None
