"""Wall-clock time for timestamps, robust to a box whose clock is unset or jumps.

Cheap ARM boxes have no RTC: they boot in 1970 (or at the last shutdown) until NTP answers,
and NTP may then step the clock. Recordings must not be filed under 1970 (retention would
delete them at once) nor go backwards. `WallClock` runs on the monotonic clock, anchored to
the system clock, and re-anchors when the system clock steps; while the system clock is
behind the last time we know was real (the newest recording), it continues from there, unless
the kernel reports the clock NTP-synchronised (then a box whose clock was ahead is corrected).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# Anything before this is a clock that was never set (this software did not exist yet).
EARLIEST_PLAUSIBLE = 1_767_225_600.0  # 2026-01-01T00:00:00Z
STEP_TOLERANCE_S = 2.0


TIME_ERROR = 5  # adjtimex(2): the kernel's clock is not synchronised


TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


def kernel_clock_synchronized() -> bool:
    """True when NTP (chrony, systemd-timesyncd) has disciplined the kernel clock.

    Asks adjtimex(2); a service with systemd's ProtectClock= cannot call it, so the flag file
    systemd-timesyncd keeps is checked first."""
    if TIMESYNCD_FLAG.exists():
        return True
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex, zeroed: modes = 0 reads only
        return bool(libc.adjtimex(timex) not in (-1, TIME_ERROR))
    except (OSError, AttributeError):
        return False


class WallClock:
    def __init__(
        self,
        floor: float = 0.0,
        system: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        synchronized: Callable[[], bool] = kernel_clock_synchronized,
    ) -> None:
        self._system = system
        self._monotonic = monotonic
        self._synchronized = synchronized
        self._lock = threading.Lock()
        self._floor = max(floor, EARLIEST_PLAUSIBLE)
        mono = monotonic()
        # (wall, monotonic) in one attribute: `now()` reads it without the lock in one step.
        self._anchor = (self._trusted(system(), self._floor), mono)
        self.steps = 0

    def _trusted(self, system_now: float, fallback: float) -> float:
        if system_now >= self._floor:
            return system_now
        if system_now >= EARLIEST_PLAUSIBLE and self._synchronized():
            # NTP says the clock is right: an earlier lead (a wrong RTC) is corrected, not kept.
            self._floor = EARLIEST_PLAUSIBLE
            return system_now
        return fallback

    def raise_floor(self, t: float) -> None:
        """Never hand out a time before `t` again (called with each recorded segment's end)."""
        with self._lock:
            self._floor = max(self._floor, t)

    def now(self) -> float:
        # Called for every packet of every camera: the usual case (no step) takes no lock.
        wall, anchor_mono = self._anchor
        derived = wall + (self._monotonic() - anchor_mono)
        if abs(self._system() - derived) <= STEP_TOLERANCE_S:
            return derived
        with self._lock:
            mono = self._monotonic()
            wall, anchor_mono = self._anchor  # another thread may have re-anchored meanwhile
            derived = wall + (mono - anchor_mono)
            system_now = self._system()
            if abs(system_now - derived) <= STEP_TOLERANCE_S:
                return derived
            if self._trusted(system_now, derived) != system_now:
                # Clock unset, or stepped behind what we already recorded without NTP vouching
                # for it: keep counting from there.
                return derived
            self.steps += 1
            log.warning("system clock stepped by %+.1f s; re-anchoring timestamps", system_now - derived)
            self._anchor = (system_now, mono)
            return system_now
