"""Give each person an id across frames: IoU matching against positions predicted from velocity.

A track becomes a *person* only when it has enough hits and the median of its recent scores
passes `min_score`: a one-frame false positive (a coat on a chair for one frame) never alerts.
Tracked objects are `Track` objects, never bare dicts.
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
        pairs = sorted(
            (
                (track.predicted(t).iou(det.box), ti, di)
                for ti, track in enumerate(self.tracks)
                for di, det in enumerate(detections)
                if det.label == track.label
            ),
            reverse=True,
        )
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        matched: list[tuple[Track, Detection]] = []
        confirmed: list[Track] = []
        for iou, ti, di in pairs:
            if iou < MATCH_IOU:
                break
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

    def _hit(self, track: Track, det: Detection, t: float) -> None:
        dt = t - track.last_seen
        if dt > 0:
            (cx0, cy0), (cx1, cy1) = track.box.center, det.box.center
            # Smoothed velocity: a jittery box must not fling the prediction around.
            vx, vy = (cx1 - cx0) / dt, (cy1 - cy0) / dt
            track.velocity = (0.5 * track.velocity[0] + 0.5 * vx, 0.5 * track.velocity[1] + 0.5 * vy)
        track.box = det.box
        track.last_seen = t
        track.last_checked = t
        track.hits += 1
        track.misses = 0
        track.scores.append(det.score)
        track.best_score = max(track.best_score, det.score)

    def _qualifies(self, track: Track) -> bool:
        return track.hits >= self.min_hits and track.median_score >= self.min_score
