"""Registers the preview provider, exactly as a third-party plugin would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import reelgen

__all__ = ["reelgen_register_providers"]


@reelgen.hookimpl
def reelgen_register_providers(register: Callable[..., None]) -> None:
    def factory(config: Any) -> reelgen.Provider:
        from .provider import PreviewProvider  # imports PyAV and Pillow lazily, on first use

        return PreviewProvider(config)

    register("preview", factory)
