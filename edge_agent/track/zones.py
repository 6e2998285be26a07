"""Zones and masks (polygons in normalised coordinates) and arming schedules in local time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from edge_agent.detectors.base import Box


class Polygon:
    """A polygon given in normalised [0, 1] coordinates, tested in a frame's pixels."""

    def __init__(self, points: Sequence[Sequence[float]]) -> None:
        self.points = np.asarray(points, dtype=np.float32).reshape(-1, 2)

    def contains(self, x: float, y: float, width: int, height: int) -> bool:
        contour = self.points * np.array([width, height], dtype=np.float32)
        return bool(cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0)

    def mask(self, width: int, height: int) -> np.ndarray:
        contour = np.round(self.points * np.array([width, height])).astype(np.int32)
        out = np.zeros((height, width), np.uint8)
        cv2.fillPoly(out, [contour], 255)
        return out


def foot_point(box: Box) -> tuple[float, float]:
    """Where a person stands: the bottom centre of the box (what zones and masks test)."""
    return (box.x1 + box.x2) / 2, box.y2


class ArmingSchedule:
    """["always"] or local-time ranges like "22:00-06:00" (crossing midnight) when events are raised."""

    def __init__(self, ranges: Sequence[str], timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self.always = "always" in ranges
        self.ranges: list[tuple[time, time]] = []
        for text in ranges:
            if text == "always":
                continue
            start, end = text.split("-")
            self.ranges.append((_parse(start), _parse(end)))

    def armed(self, t: float) -> bool:
        if self.always:
            return True
        now = datetime.fromtimestamp(t, self.zone).time()
        for start, end in self.ranges:
            if start <= end:
                if start <= now < end:
                    return True
            elif now >= start or now < end:  # crosses midnight
                return True
        return False


def _parse(text: str) -> time:
    hours, minutes = (int(p) for p in text.split(":"))
    if hours == 24:
        return time(23, 59, 59, 999999)
    return time(hours, minutes)
