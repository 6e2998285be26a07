"""Make a camera's packet timestamps usable: present, increasing, without wild jumps.

Cheap cameras send packets without timestamps, restart their RTP clock, wrap it, or jump it
by hours. The recorder needs decode timestamps that only go forward by plausible steps;
absolute time comes from the box's clock (see edge_agent.clock), never from the camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass
class Stamped:
    pts: int
    dts: int
    duration: int


class TimestampSanitizer:
    def __init__(self, time_base: Fraction, nominal_fps: float | None, max_jump_s: float = 5.0) -> None:
        self.time_base = time_base
        # Per-packet arithmetic in float ticks: Fraction arithmetic is pure Python and slow.
        self._seconds_per_tick = float(time_base)
        fps = nominal_fps if nominal_fps and 0.5 <= nominal_fps <= 240 else 15.0
        self.default_step = max(1, round(1 / (fps * self._seconds_per_tick)))
        self.max_jump = round(max_jump_s / self._seconds_per_tick)
        self._offset = 0
        self._last_dts: int | None = None
        self._last_step = self.default_step
        self.repairs = 0

    def seconds(self, ticks: int) -> float:
        return ticks * self._seconds_per_tick

    def __call__(self, pts: int | None, dts: int | None, arrival_delta_s: float | None = None) -> Stamped:
        """Sanitised timestamps for one packet. `arrival_delta_s` is the box-clock time since the
        previous packet: it sizes a gap that a timestamp jump might really be (a frozen stream)."""
        if dts is None:
            dts = pts
        if pts is None:
            pts = dts
        last = self._last_dts
        if dts is None or pts is None:
            # No timestamp at all: continue at the nominal rate.
            base = (last + self._last_step) if last is not None else 0
            self._last_dts = base
            return Stamped(base, base, self._last_step)
        dts += self._offset
        pts += self._offset
        if last is not None:
            step = dts - last
            plausible_gap = self.max_jump
            if arrival_delta_s is not None:
                plausible_gap = max(self.max_jump, round((arrival_delta_s + 2.0) / self._seconds_per_tick))
            if step <= 0 or step > plausible_gap:
                # Backwards (wrap, camera restart, file loop) or a jump: splice it onto our timeline.
                wanted = last + self._last_step
                if arrival_delta_s is not None and step > plausible_gap:
                    wanted = last + max(self._last_step, round(arrival_delta_s / self._seconds_per_tick))
                shift = wanted - dts
                self._offset += shift
                dts += shift
                pts += shift
                self.repairs += 1
            else:
                self._last_step = step
        pts = max(pts, dts)
        self._last_dts = dts
        return Stamped(pts, dts, self._last_step)
