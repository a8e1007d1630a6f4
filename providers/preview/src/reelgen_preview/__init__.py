"""reelgen-preview: free, offline previews that animate the reference image."""

from __future__ import annotations

from .capabilities import CAPABILITIES, MODEL

__all__ = ["CAPABILITIES", "MODEL", "PreviewProvider"]


def __getattr__(name: str) -> object:
    if name == "PreviewProvider":
        from .provider import PreviewProvider

        return PreviewProvider
    raise AttributeError(name)
