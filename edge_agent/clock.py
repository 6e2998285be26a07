"""Wall-clock time for timestamps, robust to a box whose clock is unset or jumps.

Cheap ARM boxes have no RTC: they boot in 1970 (or at the last shutdown) until NTP answers,
and NTP may then step the clock. Recordings must not be filed under 1970 (retention would
delete them at once) nor go backwards. `WallClock` runs on the monotonic clock, anchored to
the system clock, and re-anchors when the system clock steps; while the system clock is
behind the last time we know was real (the newest recording), it continues from there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# Anything before this is a clock that was never set (this software did not exist yet).
EARLIEST_PLAUSIBLE = 1_767_225_600.0  # 2026-01-01T00:00:00Z
STEP_TOLERANCE_S = 2.0


class WallClock:
    def __init__(
        self,
        floor: float = 0.0,
        system: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._system = system
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._floor = max(floor, EARLIEST_PLAUSIBLE)
        self._anchor_mono = monotonic()
        self._anchor_wall = self._trusted(system(), self._floor)
        self.steps = 0

    def _trusted(self, system_now: float, fallback: float) -> float:
        if system_now >= self._floor:
            return system_now
        return fallback

    def raise_floor(self, t: float) -> None:
        """Never hand out a time before `t` again (called with each recorded segment's end)."""
        with self._lock:
            self._floor = max(self._floor, t)

    def now(self) -> float:
        with self._lock:
            mono = self._monotonic()
            derived = self._anchor_wall + (mono - self._anchor_mono)
            system_now = self._system()
            if abs(system_now - derived) <= STEP_TOLERANCE_S:
                return derived
            if system_now < self._floor:
                # Clock unset or stepped behind what we already recorded: keep counting from there.
                return derived
            self.steps += 1
            log.warning("system clock stepped by %+.1f s; re-anchoring timestamps", system_now - derived)
            self._anchor_wall, self._anchor_mono = system_now, mono
            return system_now
