"""Where to run the person detector: regions around motion and tracked objects.

Running the person detector on the whole frame every analysed frame is the most expensive thing
the agent does. The pipeline runs it only on `detection_regions(...)`: the motion boxes (something
changed there) and the tracked boxes (a person who stopped moving is absorbed by the motion
background after a few seconds, but must still be followed), padded so that a moving person is
seen whole, merged where they overlap (one inference instead of two over the same pixels), grown to
the detector's minimum input size (a 20-pixel box upscaled to 320 px is useless for the model) and
clipped to the frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from edge_agent.detectors.base import Box


def detection_regions(
    motion_boxes: Iterable[Box],
    tracked_boxes: Iterable[Box],
    frame_w: int,
    frame_h: int,
    pad: float,
    min_size: float,
) -> list[Box]:
    """Regions (frame pixel coordinates) to run the person detector on.

    1. Every box is padded by `pad` pixels on each side and clipped to the frame; empty boxes
       (nothing left inside the frame) are dropped.
    2. Boxes that overlap or touch are merged (their union), until none do.
    3. Each region is grown to at least `min_size` x `min_size` (or the frame's size if that is
       smaller), around its centre, shifted to stay inside the frame.
    4. Grown regions that now overlap are merged again (and grown again if needed).

    Coordinates are rounded outwards to whole pixels (crops are whole pixels). Regions are sorted
    by (y1, x1) so that the order is deterministic.
    """
    if frame_w <= 0 or frame_h <= 0:
        raise ValueError(f"frame size must be positive, got {frame_w}x{frame_h}")
    if pad < 0 or min_size < 0:
        raise ValueError("pad and min_size must be >= 0")
    regions: list[Box] = []
    for box in [*motion_boxes, *tracked_boxes]:
        padded = _whole_pixels(box.pad(pad, frame_w, frame_h), frame_w, frame_h)
        if padded.width > 0 and padded.height > 0:
            regions.append(padded)
    while True:
        regions = _merge_touching(regions)
        grown = [_grow(r, min_size, frame_w, frame_h) for r in regions]
        if grown == regions:
            break
        # Growing can make regions overlap (two people a few pixels apart): merge again. Each pass
        # either stops or reduces the number of regions, so this ends.
        regions = grown
    return sorted(regions, key=lambda r: (r.y1, r.x1, r.y2, r.x2))


def _whole_pixels(box: Box, frame_w: int, frame_h: int) -> Box:
    """Round outwards and clip (Box.pad clips to [0, size] already; an input box may be outside)."""
    x1 = min(max(math.floor(box.x1), 0), frame_w)
    y1 = min(max(math.floor(box.y1), 0), frame_h)
    x2 = min(max(math.ceil(box.x2), 0), frame_w)
    y2 = min(max(math.ceil(box.y2), 0), frame_h)
    return Box(float(x1), float(y1), float(x2), float(y2))


def _touch(a: Box, b: Box) -> bool:
    # Closed intervals: boxes that share an edge are merged too (the union costs no extra pixels).
    return a.x1 <= b.x2 and b.x1 <= a.x2 and a.y1 <= b.y2 and b.y1 <= a.y2


def _merge_touching(boxes: list[Box]) -> list[Box]:
    items = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                if _touch(items[i], items[j]):
                    items[i] = items[i].union(items[j])
                    del items[j]
                    merged = True
                    break
            if merged:
                break
    return items


def _grow(box: Box, min_size: float, frame_w: int, frame_h: int) -> Box:
    x1, x2 = _grow_axis(box.x1, box.x2, min_size, frame_w)
    y1, y2 = _grow_axis(box.y1, box.y2, min_size, frame_h)
    return Box(x1, y1, x2, y2)


def _grow_axis(lo: float, hi: float, min_size: float, limit: int) -> tuple[float, float]:
    """Widen [lo, hi] to min(min_size, limit) whole pixels around its centre, inside [0, limit]."""
    size = min(math.ceil(min_size), limit)
    if hi - lo >= size:
        return lo, hi
    extra = size - (hi - lo)
    lo = lo - math.floor(extra / 2)
    hi = lo + size
    # Shift back inside the frame, keeping the size.
    if lo < 0:
        lo, hi = 0.0, float(size)
    elif hi > limit:
        lo, hi = float(limit - size), float(limit)
    return float(lo), float(hi)
