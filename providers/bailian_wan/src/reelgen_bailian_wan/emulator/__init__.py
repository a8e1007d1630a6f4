"""A faithful local emulator of DashScope's video-synthesis API for `wan2.6-i2v-flash`.

Start one in a background thread on a free loopback port::

    from reelgen_bailian_wan.emulator import DashScopeEmulator, EmulatorConfig, Faults

    with DashScopeEmulator(EmulatorConfig(time_scale=0.01)) as emu:
        dashscope.base_http_api_url = emu.base_url
        ...
        emu.counters()

or from the command line (`python -m reelgen_bailian_wan.emulator --port 8080`), or
as the `dashscope_emulator` pytest fixture. See docs/emulator.md.
"""

from .config import MODEL, EmulatorConfig, Faults
from .render import output_size
from .server import DashScopeEmulator

__all__ = ["MODEL", "DashScopeEmulator", "EmulatorConfig", "Faults", "output_size"]
