"""Tailgating: persons crossing a door line inward, counted against the grants of the door's open
time. Pure geometry and counting (no video), so the rule is tested on its own and on footage.

A person crosses when the tracker's track of them appeared on the outside of the line and their
feet (the bottom centre of the box, where zones look too) are now on the inside, the way between
passing through the line segment itself: someone walking past beside the door does not count.
Each track counts once, so a person standing on the line while the box jitters is one person.
Judging from where the track appeared (not from the last frame) is what makes that hold: a
track's side is decided by a real walk, not by a few pixels of noise across the line.

The door's open time is a session: a grant opens it until the relay's pulse plus the held-open
window has passed, a grant within it extends it. Crossings within a session count; each person
beyond the session's grants raises one finding (at a busy door the session runs on from card to
card: one alarm per session would hide every tailgater after the first).
A grant whose holder did not walk in leaves its place to one more person in that session: the
count is per door opening, not per card, as an installer would count it at the door.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a gate box without door cameras never loads the tracker's OpenCV
    from edge_agent.detectors.base import Box
    from edge_agent.track.tracker import Track

XY = tuple[float, float]


class DoorLine:
    """A segment across the doorway in normalised coordinates, and which side is inside."""

    def __init__(self, a: Sequence[float], b: Sequence[float], inside: Sequence[float]) -> None:
        self.a: XY = (float(a[0]), float(a[1]))
        self.b: XY = (float(b[0]), float(b[1]))
        self._inside_sign = 1.0 if self._cross((float(inside[0]), float(inside[1]))) > 0 else -1.0

    def _cross(self, p: XY) -> float:
        (ax, ay), (bx, by) = self.a, self.b
        return (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)

    def inside(self, p: XY) -> bool:
        return self._cross(p) * self._inside_sign > 0

    def crossed_in(self, start: XY, end: XY) -> bool:
        """From `start` outside to `end` inside, through the segment (not beside it)."""
        if self.inside(start) or not self.inside(end):
            return False
        # Where the walk meets the line's infinite extension, as a fraction along the segment a-b.
        (ax, ay), (bx, by) = self.a, self.b
        dx, dy = end[0] - start[0], end[1] - start[1]
        ex, ey = bx - ax, by - ay
        denom = dx * ey - dy * ex
        if denom == 0:
            return False
        u = ((start[0] - ax) * dy - (start[1] - ay) * dx) / -denom
        return 0.0 <= u <= 1.0


@dataclass(frozen=True)
class Tailgating:
    """More persons crossed in than the session's grants let in."""

    at: float  # when the crossing that made it one too many was seen
    grants: int
    persons: int


def _foot(box: Box, width: int, height: int) -> XY:
    from edge_agent.track.zones import foot_point  # the analysis thread has loaded it already

    x, y = foot_point(box)
    return x / width, y / height


class TailgateCounter:
    """Per door: grants (from the door's thread) and crossings (from the camera's analysis thread)."""

    def __init__(self, line: DoorLine) -> None:
        self.line = line
        self._lock = threading.Lock()
        self._open_until = float("-inf")
        self._grants = 0
        self._persons = 0
        self._alarmed = 0  # persons beyond the grants already reported in this session
        self._counted: set[int] = set()  # track ids that crossed (each counts once)

    def grant(self, at: float, until: float) -> None:
        """A grant at `at`; the door may let people in until `until` (pulse + held-open window)."""
        with self._lock:
            if at > self._open_until:  # the door had closed: a new opening
                self._grants, self._persons, self._alarmed = 0, 0, 0
            self._grants += 1
            self._open_until = max(self._open_until, until)

    def observe(self, t: float, tracks: Iterable[Track], width: int, height: int) -> Tailgating | None:
        """The tracks after the analysed frame at `t`; a finding when this frame made one too many."""
        crossed = 0
        live: set[int] = set()
        for track in tracks:
            live.add(track.id)
            if track.id in self._counted or not track.confirmed:
                continue
            start = track.first_box if track.first_box is not None else track.box
            if self.line.crossed_in(_foot(start, width, height), _foot(track.box, width, height)):
                self._counted.add(track.id)
                crossed += 1
        self._counted &= live  # ended tracks cannot cross again: the set stays the size of the scene
        if not crossed:
            return None
        with self._lock:
            if t > self._open_until:
                return None  # nobody was let in: a door opened without a grant is forced_open's business
            self._persons += crossed
            if self._persons - self._grants <= self._alarmed:
                return None
            self._alarmed = self._persons - self._grants
            return Tailgating(t, self._grants, self._persons)
