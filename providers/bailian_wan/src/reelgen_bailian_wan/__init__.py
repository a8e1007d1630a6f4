"""reelgen provider for Alibaba Cloud BaiLian (DashScope) `wan2.6-i2v-flash`, with a local emulator.

```python
import reelgen
req = reelgen.VideoRequest(prompt="a cat surfing", reference_image="cat.jpg", duration=5, size="1280*720")
result = reelgen.generate(req, provider="bailian_wan")
```

Importing this package does not import the dashscope SDK; the provider calls it only
when it submits, polls or cancels. See docs/providers/bailian_wan.md.
"""

from __future__ import annotations

from .capabilities import CAPABILITIES, MODEL, PROVIDER
from .config import WanConfig, parse_config
from .errors import RequestRejected
from .plugin import create_provider

__all__ = [
    "CAPABILITIES",
    "MODEL",
    "PROVIDER",
    "BailianWanProvider",
    "RequestRejected",
    "WanConfig",
    "create_provider",
    "parse_config",
]


def __getattr__(name: str) -> object:
    # The provider module (asyncio, polling model, limits) loads on first use: every
    # `reelgen` command imports this package through its entry point, even `--help`.
    if name == "BailianWanProvider":
        from .provider import BailianWanProvider

        return BailianWanProvider
    raise AttributeError(f"module 'reelgen_bailian_wan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "BailianWanProvider"])
