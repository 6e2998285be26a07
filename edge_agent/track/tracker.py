"""Give each person an id across frames: IoU matching against positions predicted from velocity.

A track becomes a *person* only when it has enough hits and the median of its recent scores
passes `min_score`: a one-frame false positive (a coat on a chair for one frame) never alerts.
Tracked objects are `Track` objects, never bare dicts.

A track ends when the detector looked at its place and missed it `max_misses + 1` times, when
it has not been seen for the caller's timeout (`expire`), or when its predicted box has left
the frame (`drop_out_of_view`): a person who walked out at the edge is gone at once, not after
the timeout, so the event that follows the track knows they left.
"""

from __future__ import annotations

import itertools
import statistics
from collections import deque
from dataclasses import dataclass, field

from edge_agent.detectors.base import Box, Detection

MATCH_IOU = 0.2
# A track not matched for this many *checked* frames is dropped (frames where the detector did
# not look at the track's region do not count against it).
MAX_MISSES = 4
# A track not seen in this frame whose predicted box has less than this share of its area inside
# the frame has walked out of view.
IN_VIEW_MIN = 0.5
# Second chance for what overlap left unmatched: a detection of about the track's size (area ratio
# within NEAR_SIZE) whose centre is within NEAR_DISTANCE box sizes of the prediction (|dx|/w + |dy|/h).
NEAR_DISTANCE = 1.0
NEAR_SIZE = 2.0
# Velocity smoothing: a new estimate over this many seconds replaces the old one entirely.
VELOCITY_SECONDS = 0.4


@dataclass
class Track:
    id: int
    box: Box
    first_seen: float
    last_seen: float
    label: str
    scores: deque[float]
    hits: int = 1
    misses: int = 0
    velocity: tuple[float, float] = (0.0, 0.0)  # px per second of the box centre
    confirmed: bool = False
    last_checked: float = 0.0
    zone_frames: dict[str, int] = field(default_factory=dict)
    best_score: float = 0.0
    first_box: Box | None = None  # where the track appeared

    def predicted(self, t: float) -> Box:
        dt = min(t - self.last_seen, 2.0)  # do not extrapolate a lost track across the frame
        return self.box.shift(self.velocity[0] * dt, self.velocity[1] * dt)

    @property
    def median_score(self) -> float:
        return statistics.median(self.scores) if self.scores else 0.0


@dataclass(frozen=True)
class TrackUpdate:
    """What one frame changed: tracks that became persons, were updated, or ended."""

    confirmed: list[Track]
    matched: list[tuple[Track, Detection]]
    removed: list[Track]


class Tracker:
    def __init__(self, min_score: float, score_window: int, min_hits: int, max_misses: int = MAX_MISSES) -> None:
        self.min_score = min_score
        self.score_window = score_window
        self.min_hits = min_hits
        self.max_misses = max_misses
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)

    def update(self, detections: list[Detection], t: float, checked: list[Box] | None = None) -> TrackUpdate:
        """Match `detections` of the frame at time `t`. `checked` is where the detector looked this
        frame (None: the whole frame); only tracks inside it can miss."""
        # Overlap with the predicted box, or with the last box when that is better: a person who
        # stops or turns back is where they were, not where their speed would have taken them.
        # What overlap leaves unmatched is then paired by distance (a person followed between
        # detector runs who turned may have left their prediction behind).
        by_overlap = sorted(
            (
                (max(track.predicted(t).iou(det.box), track.box.iou(det.box)), ti, di)
                for ti, track in enumerate(self.tracks)
                for di, det in enumerate(detections)
                if det.label == track.label
            ),
            reverse=True,
        )
        pairs = [(ti, di) for iou, ti, di in by_overlap if iou >= MATCH_IOU]
        by_distance = sorted(
            (distance, ti, di)
            for ti, track in enumerate(self.tracks)
            for di, det in enumerate(detections)
            if det.label == track.label and (distance := _near(track.predicted(t), det.box)) is not None
        )
        pairs += [(ti, di) for _, ti, di in by_distance]
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        matched: list[tuple[Track, Detection]] = []
        confirmed: list[Track] = []
        for ti, di in pairs:
            if ti in used_tracks or di in used_dets:
                continue
            used_tracks.add(ti)
            used_dets.add(di)
            track, det = self.tracks[ti], detections[di]
            self._hit(track, det, t)
            matched.append((track, det))
            if not track.confirmed and self._qualifies(track):
                track.confirmed = True
                confirmed.append(track)
        removed: list[Track] = []
        for ti, track in enumerate(self.tracks):
            if ti in used_tracks:
                continue
            if checked is None or any(track.predicted(t).iou(region) > 0 for region in checked):
                track.misses += 1
                track.last_checked = t
            if track.misses > self.max_misses:
                removed.append(track)
        self.tracks = [tr for tr in self.tracks if tr not in removed]
        for di, det in enumerate(detections):
            if di in used_dets:
                continue
            track = Track(
                id=next(self._ids),
                box=det.box,
                first_seen=t,
                last_seen=t,
                label=det.label,
                scores=deque([det.score], maxlen=self.score_window),
                last_checked=t,
                best_score=det.score,
                first_box=det.box,
            )
            self.tracks.append(track)
            matched.append((track, det))
            if self._qualifies(track):
                track.confirmed = True
                confirmed.append(track)
        return TrackUpdate(confirmed=confirmed, matched=matched, removed=removed)

    def expire(self, t: float, older_than: float) -> list[Track]:
        """Drop tracks not seen for `older_than` seconds (a person who left where nobody looked)."""
        gone = [tr for tr in self.tracks if t - tr.last_seen > older_than]
        self.tracks = [tr for tr in self.tracks if tr not in gone]
        return gone

    def drop_out_of_view(self, t: float, width: int, height: int) -> list[Track]:
        """Drop tracks not seen at `t` whose predicted box is mostly outside the frame."""
        gone = [
            tr for tr in self.tracks if tr.last_seen < t and _inside_share(tr.predicted(t), width, height) < IN_VIEW_MIN
        ]
        self.tracks = [tr for tr in self.tracks if tr not in gone]
        return gone

    def _hit(self, track: Track, det: Detection, t: float) -> None:
        dt = t - track.last_seen
        if dt > 0:
            (cx0, cy0), (cx1, cy1) = track.box.center, det.box.center
            # Smoothed velocity: a jittery box must not fling the prediction around. The weight of
            # the new estimate grows with the time it spans (0.5 for one frame at 5 fps), so a
            # person detected every few frames (followed in between) turns without a lag.
            vx, vy = (cx1 - cx0) / dt, (cy1 - cy0) / dt
            w = min(1.0, dt / VELOCITY_SECONDS)
            track.velocity = ((1 - w) * track.velocity[0] + w * vx, (1 - w) * track.velocity[1] + w * vy)
        track.box = det.box
        track.last_seen = t
        track.last_checked = t
        track.hits += 1
        track.misses = 0
        track.scores.append(det.score)
        track.best_score = max(track.best_score, det.score)

    def _qualifies(self, track: Track) -> bool:
        return track.hits >= self.min_hits and track.median_score >= self.min_score


def _inside_share(box: Box, width: int, height: int) -> float:
    if box.area <= 0:
        return 0.0
    return (
        Box(max(box.x1, 0.0), max(box.y1, 0.0), min(box.x2, float(width)), min(box.y2, float(height))).area / box.area
    )


def _near(predicted: Box, box: Box) -> float | None:
    """Normalised centre distance of `box` from `predicted`, or None if too far or too different."""
    if predicted.area <= 0 or box.area <= 0 or not 1 / NEAR_SIZE <= box.area / predicted.area <= NEAR_SIZE:
        return None
    (px, py), (bx, by) = predicted.center, box.center
    distance = abs(px - bx) / predicted.width + abs(py - by) / predicted.height
    return distance if distance <= NEAR_DISTANCE else None
