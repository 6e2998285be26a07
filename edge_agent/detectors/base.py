"""What every person detector returns, and the interface the pipeline calls.

Detections are typed objects, never positional tuples: the pipeline, tracker, events and JSON
output all read `det.box.x1`, `det.score`, `det.label`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Box:
    """Pixel box, x1,y1 inclusive top-left, x2,y2 exclusive bottom-right, in frame coordinates."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return max(0.0, self.x2 - self.x1)

    @property
    def height(self) -> float:
        return max(0.0, self.y2 - self.y1)

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def union(self, other: Box) -> Box:
        return Box(min(self.x1, other.x1), min(self.y1, other.y1), max(self.x2, other.x2), max(self.y2, other.y2))

    def pad(self, pixels: float, width: int, height: int) -> Box:
        return Box(
            max(0.0, self.x1 - pixels),
            max(0.0, self.y1 - pixels),
            min(float(width), self.x2 + pixels),
            min(float(height), self.y2 + pixels),
        )

    def shift(self, dx: float, dy: float) -> Box:
        return Box(self.x1 + dx, self.y1 + dy, self.x2 + dx, self.y2 + dy)

    def scale(self, factor: float) -> Box:
        return Box(self.x1 * factor, self.y1 * factor, self.x2 * factor, self.y2 * factor)

    def as_list(self) -> list[float]:
        return [round(self.x1, 1), round(self.y1, 1), round(self.x2, 1), round(self.y2, 1)]


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float
    label: str


class Detector(Protocol):
    """A loaded model. `detect` takes a BGR uint8 image (any size) and returns detections in that
    image's pixel coordinates, above the detector's score threshold, after NMS."""

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...
