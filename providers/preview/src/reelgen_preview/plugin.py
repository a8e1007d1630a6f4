"""Registers the preview provider, exactly as a third-party plugin would."""

from __future__ import annotations

from collections.abc import Callable

import reelgen

__all__ = ["reelgen_register_providers"]


@reelgen.hookimpl
def reelgen_register_providers(register: Callable[..., None]) -> None:
    # The class itself is the factory: the core structures [providers.preview] into its
    # PreviewConfig. The provider module imports PyAV and Pillow only when a video renders.
    from .provider import PreviewProvider

    register("preview", PreviewProvider)
