"""Person events: start, updates and end, with the best snapshot and a clip window.

An event is a stretch of time in which at least one confirmed person is in view (or in a zone,
when the camera has zones) while the camera is armed. Events follow tracks:

- A person who stays, or a second person who joins while someone of the event is still there,
  updates the open event instead of raising a new alert.
- The same person lost for a moment and found again where they were (occluded, a few detector
  misses, a new track at the same place) stays in the event.
- Once everybody of the event has gone, a person who appears elsewhere starts a new event at
  once, even within `end_after_seconds`: the next visitor is a new alert, not an update.
- Otherwise the event ends once nobody of it has been seen for `end_after_seconds`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from edge_agent.config.schema import DetectConfig
from edge_agent.detectors.base import Box
from edge_agent.events.ids import new_event_id
from edge_agent.track.tracker import Track, TrackUpdate
from edge_agent.track.zones import ArmingSchedule, Polygon, foot_point

Phase = Literal["new", "update", "end"]
CAMERA_WIDE = ""  # the zone key of an event on a camera without zones
UPDATE_SCORE_STEP = 0.05  # a better snapshot by at least this much is worth an update
# A track of the event still counts as there for a newcomer while the tracker holds it and it was
# found at its last check, or was seen at most this long before the newcomer first was (a standing
# person re-checked every few seconds may miss one check; a person who breaks into a run may be
# lost by their track and picked up by a new one a moment later).
HOLD_SECONDS = 1.5
# A new track whose first box overlaps where a track of the event was last seen (IoU at least
# this) is the same person found again, not someone else.
REACQUIRE_IOU = 0.2


@dataclass
class Snapshot:
    score: float
    t: float
    box: Box
    frame: np.ndarray  # BGR analysis frame


@dataclass
class PersonEvent:
    id: str
    camera: str
    zone: str | None
    start: float
    last_seen: float
    model: str
    label: str = "person"
    end: float | None = None
    max_score: float = 0.0
    track_ids: set[int] = field(default_factory=set)  # one per person (a person found again keeps theirs)
    members: dict[int, Box] = field(default_factory=dict)  # every track of the event: its last box
    snapshot: Snapshot | None = None
    seq: int = 0  # messages sent for this event so far: new = 0, then updates, then end

    def clip_window(self, pre_roll: float, post_roll: float) -> tuple[float, float]:
        return self.start - pre_roll, (self.end if self.end is not None else self.last_seen) + post_roll

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "camera": self.camera,
            "zone": self.zone,
            "label": self.label,
            "start": self.start,
            "end": self.end,
            "max_score": round(self.max_score, 4),
            "persons": len(self.track_ids),
            "model": self.model,
        }


@dataclass(frozen=True)
class EventChange:
    phase: Phase
    event: PersonEvent
    seq: int = 0


class EventBuilder:
    def __init__(
        self,
        camera: str,
        settings: DetectConfig,
        timezone: str,
        model: str,
        frame_size: Callable[[], tuple[int, int]],
        new_id: Callable[[float], str] = new_event_id,
    ) -> None:
        self.camera = camera
        self.settings = settings
        self.model = model
        self.schedule = ArmingSchedule(settings.armed, timezone)
        self.zones = {name: (Polygon(z.polygon), z.min_frames) for name, z in settings.zones.items()}
        self._frame_size = frame_size
        self._new_id = new_id
        self.open: dict[str, PersonEvent] = {}

    def process(
        self, t: float, frame: np.ndarray | Callable[[], np.ndarray], update: TrackUpdate, tracks: list[Track]
    ) -> list[EventChange]:
        """`frame` may be a callable: the BGR frame is only converted when a snapshot is taken."""
        get_frame = frame if callable(frame) else (lambda: frame)
        changes: list[EventChange] = []
        width, height = self._frame_size()
        seen_now = {id(track) for track, _ in update.matched}
        live = {track.id: track for track in tracks}
        for track in tracks:
            if id(track) not in seen_now:
                continue
            for zone in self._zones_of(track, width, height):
                if not track.confirmed or not self.schedule.armed(t):
                    continue
                changes.extend(self._observe(zone, track, t, get_frame, live))
        for zone, event in list(self.open.items()):
            if t - event.last_seen >= self.settings.end_after_seconds:
                changes.append(self._end(zone, event))
        return changes

    def finish(self) -> list[EventChange]:
        """End every open event (end of a file, shutdown)."""
        return [self._end(zone, event) for zone, event in list(self.open.items())]

    def _zones_of(self, track: Track, width: int, height: int) -> list[str]:
        if not self.zones:
            return [CAMERA_WIDE]
        x, y = foot_point(track.box)
        inside = []
        for name, (polygon, min_frames) in self.zones.items():
            if polygon.contains(x, y, width, height):
                track.zone_frames[name] = track.zone_frames.get(name, 0) + 1
                if track.zone_frames[name] >= min_frames:
                    inside.append(name)
            else:
                track.zone_frames[name] = 0
        return inside

    def _observe(
        self, zone: str, track: Track, t: float, frame: Callable[[], np.ndarray], live: dict[int, Track]
    ) -> list[EventChange]:
        score = track.scores[-1] if track.scores else 0.0
        event = self.open.get(zone)
        ended: list[EventChange] = []
        joins = True
        if event is not None and track.id not in event.members:
            joins = _someone_still_there(event, track, live)
            if not joins and not _found_again(event, track):
                ended.append(self._end(zone, event))
                event = None
        if event is None:
            event = PersonEvent(
                id=self._new_id(t),
                camera=self.camera,
                zone=zone or None,
                start=track.first_seen,
                last_seen=t,
                model=self.model,
                max_score=score,
                track_ids={track.id},
                members={track.id: track.box},
                snapshot=Snapshot(score, t, track.box, frame().copy()),
            )
            self.open[zone] = event
            return [*ended, EventChange("new", event, 0)]
        event.last_seen = t
        changed = False
        if track.id not in event.members and joins:
            event.track_ids.add(track.id)  # another person
            changed = True
        event.members[track.id] = track.box
        event.max_score = max(event.max_score, score)
        best = event.snapshot
        if best is None or score >= best.score + UPDATE_SCORE_STEP:
            event.snapshot = Snapshot(score, t, track.box, frame().copy())
            changed = True
        if not changed:
            return []
        event.seq += 1
        return [EventChange("update", event, event.seq)]

    def _end(self, zone: str, event: PersonEvent) -> EventChange:
        event.end = event.last_seen
        del self.open[zone]
        event.seq += 1
        return EventChange("end", event, event.seq)


def _someone_still_there(event: PersonEvent, newcomer: Track, live: dict[int, Track]) -> bool:
    for track_id in event.members:
        track = live.get(track_id)
        if track is not None and (track.misses == 0 or newcomer.first_seen - track.last_seen <= HOLD_SECONDS):
            return True
    return False


def _found_again(event: PersonEvent, track: Track) -> bool:
    first = track.first_box or track.box
    return any(first.iou(box) >= REACQUIRE_IOU for box in event.members.values())
