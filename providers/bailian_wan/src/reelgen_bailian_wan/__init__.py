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
from .provider import BailianWanProvider

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
