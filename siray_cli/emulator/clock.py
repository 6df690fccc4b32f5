"""The emulator's clock: real time plus an offset that only grows, so a test can make a
multi-second task finish at once (`advance`) instead of sleeping through it. Every timeline
decision (task state, progress, cancel, `finishes_at`, the duplicate window) reads this clock;
network behaviour (fault delays, stalls) stays on real time."""

from __future__ import annotations

import math
import threading
import time


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        return self._offset

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def time(self) -> float:
        """Wall-clock seconds since the epoch, advanced as the monotonic time is."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward (never back: it is monotonic); returns the new offset."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"the clock only moves forward, by a finite amount, not {seconds!r}")
        with self._lock:
            self._offset += seconds
            return self._offset
