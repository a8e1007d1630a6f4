"""`emulator = true`: the bundled DashScope emulator as the provider's endpoint.

The plugin factory (`plugin.create_provider`) builds the provider with this endpoint, so
the production class never imports its test double. The emulator starts in this process
on the first call (building a provider stays cheap and offline: `reelgen providers` builds
every one) and stops when the provider is closed.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from reelgen.threads import run_blocking

from .config import EMULATOR_API_KEY

if TYPE_CHECKING:
    from .emulator import DashScopeEmulator

__all__ = ["EmulatorEndpoint"]

log = logging.getLogger("reelgen_bailian_wan")


class EmulatorEndpoint:
    """The emulator, started on first use, at its time scale."""

    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale
        self._lock = threading.Lock()
        #: The running emulator, once a call needed it.
        self.emulator: DashScopeEmulator | None = None

    def resolve(self) -> tuple[str, str]:
        with self._lock:
            if self.emulator is None:
                from .emulator import DashScopeEmulator, EmulatorConfig

                emulator = DashScopeEmulator(EmulatorConfig(time_scale=self.time_scale))
                emulator.start()
                log.info("started the DashScope emulator at %s", emulator.base_url)
                self.emulator = emulator
            return self.emulator.base_url, EMULATOR_API_KEY

    async def aclose(self) -> None:
        with self._lock:
            emulator, self.emulator = self.emulator, None
        if emulator is not None:
            await run_blocking(emulator.stop, timeout=10, name="emulator-stop")
