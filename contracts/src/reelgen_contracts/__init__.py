"""reelgen-contracts: prove a reelgen provider honours the `video.generate` contract.

```python
from reelgen_contracts import ProviderContract

class TestMyProvider(ProviderContract):
    @pytest.fixture
    def provider_factory(self):
        return MyProvider
```

or, for any installed provider, `pytest --reelgen-provider NAME`. The Hypothesis
strategies are in `reelgen_contracts.strategies`; what the suite checks is listed in
docs/contracts.md.

Names load on first use: the pytest plugin lives in this package and is loaded by every
pytest run in the environment, which must not pay for Hypothesis unless it uses the suite.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import strategies
    from ._harness import Generation, Harness
    from ._values import InvalidRequest
    from .images import ImageServer
    from .sandbox import FAULT_KINDS, ExpectedFault, FaultInjector, Sandbox
    from .strategies import Budget
    from .suite import ProviderContract, override
    from .witnesses import BillingGuardError, CountingProvider, SocketAudit

__all__ = [
    "FAULT_KINDS",
    "BillingGuardError",
    "Budget",
    "CountingProvider",
    "ExpectedFault",
    "FaultInjector",
    "Generation",
    "Harness",
    "ImageServer",
    "InvalidRequest",
    "ProviderContract",
    "Sandbox",
    "SocketAudit",
    "override",
    "strategies",
]

_WHERE = {
    "FAULT_KINDS": "sandbox",
    "BillingGuardError": "witnesses",
    "Budget": "strategies",
    "CountingProvider": "witnesses",
    "ExpectedFault": "sandbox",
    "FaultInjector": "sandbox",
    "Generation": "_harness",
    "Harness": "_harness",
    "ImageServer": "images",
    "InvalidRequest": "_values",
    "ProviderContract": "suite",
    "Sandbox": "sandbox",
    "SocketAudit": "witnesses",
    "override": "suite",
}


def __getattr__(name: str) -> Any:
    if name == "strategies":
        value: Any = importlib.import_module(".strategies", __name__)
    elif name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'reelgen_contracts' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
