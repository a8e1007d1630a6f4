"""reelgen: one `video.generate` contract, pluggable providers, durable verified results.

```python
import reelgen
req = reelgen.VideoRequest(prompt="a cat surfing", reference_image="cat.png", duration=5)
result = reelgen.generate(req)          # the configured provider
print(result.video_url, result.duration, result.fps, result.size, result.warnings)
```

The pipeline (and PyAV, httpx, provider SDKs) load on first use, so importing this
package is cheap.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from .capabilities import Capabilities, OptionSpec, ResolutionTier
from .contract import SCHEMA_VERSION, VideoRequest, VideoResult
from .errors import (
    AuthenticationError,
    Cancelled,
    ConfigError,
    ContentRejected,
    DeliveryFailed,
    GenerationTimeout,
    IntegrityError,
    PluginError,
    ProviderError,
    ProviderFailed,
    ProviderRefused,
    QuotaExceeded,
    RateLimited,
    ReelgenError,
    StorageError,
    StrictWarningError,
    SubmissionUnknown,
    TaskExpired,
    TooLarge,
    TransientError,
    ValidationError,
)
from .hookspecs import hookimpl
from .provider import BaseProvider, JobStatus, Provider, ProviderJob, ProviderOutput

if _typing.TYPE_CHECKING:
    from ._pipeline import agenerate, generate, request_key, resume, submit, validate
    from ._registry import ProviderInfo
    from ._schema import json_schema
    from .batches import abatch, batch
    from .config import Config, load_config
    from .events import Event
    from .jobs import Job

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "AuthenticationError",
    "BaseProvider",
    "Cancelled",
    "Capabilities",
    "Config",
    "ConfigError",
    "ContentRejected",
    "DeliveryFailed",
    "Event",
    "GenerationTimeout",
    "IntegrityError",
    "Job",
    "JobStatus",
    "OptionSpec",
    "PluginError",
    "Provider",
    "ProviderError",
    "ProviderFailed",
    "ProviderInfo",
    "ProviderJob",
    "ProviderOutput",
    "ProviderRefused",
    "QuotaExceeded",
    "RateLimited",
    "ReelgenError",
    "ResolutionTier",
    "StorageError",
    "StrictWarningError",
    "SubmissionUnknown",
    "TaskExpired",
    "TooLarge",
    "TransientError",
    "ValidationError",
    "VideoRequest",
    "VideoResult",
    "__version__",
    "abatch",
    "agenerate",
    "batch",
    "generate",
    "hookimpl",
    "json_schema",
    "load_config",
    "providers",
    "request_key",
    "resume",
    "submit",
    "validate",
]

_LAZY = {
    "Config": "config",
    "load_config": "config",
    "Event": "events",
    "Job": "jobs",
    "abatch": "batches",
    "agenerate": "_pipeline",
    "batch": "batches",
    "generate": "_pipeline",
    "request_key": "_pipeline",
    "resume": "_pipeline",
    "submit": "_pipeline",
    "validate": "_pipeline",
    "ProviderInfo": "_registry",
    "json_schema": "_schema",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reelgen' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def providers(config: Config | None = None) -> list[ProviderInfo]:
    """Installed providers with their capabilities (or why they could not be set up)."""
    from ._registry import provider_infos
    from .config import load_config

    return provider_infos(config or load_config())
