"""How long past generations took, per provider and model, for progress estimates.

Kept in the job journal's SQLite file, in its own `timings` table; an estimate is a
nicety, so every failure here is swallowed by the caller.
"""

from __future__ import annotations

import statistics
import time

from ._sqlite import Database

__all__ = ["TimingStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS timings (
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    duration REAL NOT NULL,
    pixels INTEGER NOT NULL,
    seconds REAL NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS timings_by_model ON timings (provider, model, at);
"""


class TimingStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _ready(self) -> Database:
        self._db.ensure("timings", _SCHEMA)
        return self._db

    def record(self, provider: str, model: str, duration: float, pixels: int, seconds: float) -> None:
        with self._ready().transaction() as db:
            db.execute(
                "INSERT INTO timings (provider, model, duration, pixels, seconds, at) VALUES (?,?,?,?,?,?)",
                (provider, model, duration, pixels, seconds, time.time()),
            )

    def estimate(self, provider: str, model: str, duration: float, pixels: int) -> float | None:
        """Median seconds of the last similar generations, scaled by output seconds x pixels."""
        with self._ready().transaction() as db:
            rows = db.execute(
                "SELECT duration, pixels, seconds FROM timings WHERE provider = ? AND model = ? "
                "ORDER BY at DESC LIMIT 20",
                (provider, model),
            ).fetchall()
        if not rows:
            return None
        work = duration * pixels
        return float(statistics.median(seconds * work / max(1.0, d * p) for d, p, seconds in rows))
