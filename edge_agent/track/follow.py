"""Where the detector must look this frame, given the tracks and the motion boxes.

Gating on motion alone runs the detector on almost every frame while someone walks through the
picture: they are the motion. So a confirmed person is followed between detector runs by the
cheap things the pipeline already has, and the detector looks again only when it is needed:

- A confirmed person who moves is followed by their track's constant-velocity prediction,
  checked against motion: the motion boxes that their predicted box explains (mostly inside it)
  cost no detector run. The detector looks at them again after `follow_seconds` (the safety net:
  the prediction drifts, and the score window wants fresh scores).
- A confirmed person whose prediction has no motion on it is either standing still (re-checked
  every `recheck_seconds`) or not where the prediction says (it moved on, the person stopped or
  turned): once the prediction has drifted by `DRIFT` of the box's width from where they were
  last seen, the detector looks at once.
- A track not yet confirmed is looked at on every frame with motion on it: it needs its hits.
  With `unconfirmed_always` (the pipeline at night, where a dark person's motion is faint) on
  every frame, motion or not.
- Motion that no followed person explains (someone new, a second person beside the first, a
  person far from their prediction) is looked at at once, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.detectors.base import Box
from edge_agent.track.tracker import Track

# At 5 fps: the detector looks at a walking person on one frame in three.
FOLLOW_SECONDS = 0.6
# A motion box is a followed person's when this share of it lies inside their predicted box,
# grown by FOLLOW_MARGIN of its size on each side (motion trails the person and is dilated).
# Motion that spills further out means the person sped up, turned or met someone: look again.
EXPLAINED_SHARE = 0.9
FOLLOW_MARGIN = 0.25
# A prediction with no motion on it that has moved this share of the box's width from the last
# detection no longer says where the person is.
DRIFT = 0.5
EPSILON = 1e-6  # frame times are floats: 0.6 s after 24.4 s must be due at 25.0 s


@dataclass(frozen=True)
class Plan:
    tracked: list[Box]  # predicted boxes of the tracks the detector looks at
    motion: list[Box]  # motion boxes the detector looks at
    followed: list[Track]  # confirmed tracks followed on motion alone this frame


def plan_detection(
    tracks: Sequence[Track],
    motion_boxes: Sequence[Box],
    t: float,
    recheck_seconds: float,
    follow_seconds: float = FOLLOW_SECONDS,
    unconfirmed_always: bool = False,
) -> Plan:
    tracked: list[Box] = []
    followed: list[tuple[Track, Box]] = []
    for track in tracks:
        predicted = track.predicted(t)
        moving = any(predicted.iou(m) > 0 for m in motion_boxes)
        since = t - track.last_checked
        if since >= recheck_seconds - EPSILON:
            tracked.append(predicted)
        elif not track.confirmed:
            if moving or unconfirmed_always:
                tracked.append(predicted)
        elif moving:
            if since >= follow_seconds - EPSILON:
                tracked.append(predicted)
            else:
                followed.append((track, predicted))
        elif _drifted(track, predicted):
            tracked.append(predicted)
    motion = [m for m in motion_boxes if not any(_explains(p, m) for _, p in followed)]
    return Plan(tracked, motion, [tr for tr, _ in followed])


def _explains(predicted: Box, motion: Box) -> bool:
    dx, dy = FOLLOW_MARGIN * predicted.width, FOLLOW_MARGIN * predicted.height
    grown = Box(predicted.x1 - dx, predicted.y1 - dy, predicted.x2 + dx, predicted.y2 + dy)
    ix = max(0.0, min(grown.x2, motion.x2) - max(grown.x1, motion.x1))
    iy = max(0.0, min(grown.y2, motion.y2) - max(grown.y1, motion.y1))
    return motion.area > 0 and ix * iy >= EXPLAINED_SHARE * motion.area


def _drifted(track: Track, predicted: Box) -> bool:
    (px, py), (bx, by) = predicted.center, track.box.center
    return abs(px - bx) + abs(py - by) > DRIFT * track.box.width
