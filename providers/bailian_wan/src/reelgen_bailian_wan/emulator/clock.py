"""The emulator's clock: wall time plus an offset that tests can push forward.

Every timestamp the emulator reports or checks (task times, URL `Expires=`, policy
expiration, task expiry) comes from one `Clock`, so `advance()` ages tasks, URLs
and uploads together without sleeping. Rate limits use real monotonic time instead:
they are about how fast a client really calls.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

__all__ = ["Clock"]


class Clock:
    def __init__(self, utc_offset_hours: float = 8.0) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self.zone = timezone(timedelta(hours=utc_offset_hours))

    def now(self) -> float:
        """Seconds since the epoch, as the emulated service sees them."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0

    def local(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, self.zone)

    def format(self, epoch: float) -> str:
        """`YYYY-MM-DD HH:mm:ss.SSS` in the service's zone, like `submit_time`."""
        moment = self.local(epoch)
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"

    def parse_compact(self, text: str) -> float:
        """`20230420000000` (the list filter format) in the service's zone, to epoch."""
        moment = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=self.zone)
        return moment.timestamp()

    @staticmethod
    def iso_utc(epoch: float) -> str:
        """`2025-07-12T12:10:24.488Z`, the OSS policy `expiration` format."""
        moment = datetime.fromtimestamp(epoch, timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

    @staticmethod
    def iso_parse(text: str) -> float:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
