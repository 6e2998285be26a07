"""Person events: start, updates and end, with the best snapshot and a clip window.

An event is a stretch of time in which at least one confirmed person is in view (or in a zone,
when the camera has zones) while the camera is armed. Events follow tracks:

- A person who stays, or a second person who joins while someone of the event is still there,
  updates the open event instead of raising a new alert. While the event's people are still
  tracked but were missed at their last check, a newcomer waits (`_newcomer`) until the tracker
  knows whether they left.
- The same person lost for a moment and found again where they were or where they were heading
  (occluded, a few detector misses, a new track at the same place) stays in the event.
- Once everybody of the event has gone, a person who appears elsewhere starts a new event at
  once, even within `end_after_seconds`: the next visitor is a new alert, not an update.
- Otherwise the event ends once nobody of it has been seen for `end_after_seconds`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from contract import Event, SnapshotRef
from edge_agent.config.schema import DetectConfig
from edge_agent.detectors.base import Box
from edge_agent.events.ids import new_event_id
from edge_agent.events.local import ClipWindow, LocalEvent, PersonDetail
from edge_agent.track.tracker import Track, TrackUpdate
from edge_agent.track.zones import ArmingSchedule, Polygon, foot_point

Phase = Literal["new", "update", "end"]
CAMERA_WIDE = ""  # the zone key of an event on a camera without zones
UPDATE_SCORE_STEP = 0.05  # a better snapshot by at least this much is worth an update
# A track of the event counts as still there for a newcomer while the tracker holds it and it was
# found at its last check. One the tracker holds but missed at its last check (leaving, or hidden
# for a moment) makes the newcomer wait, at most WAIT_SECONDS after they appeared, for the tracker
# to find it again or drop it; after that it counts as there if it was seen at most HOLD_SECONDS
# before the newcomer appeared (a standing person re-checked every few seconds may miss a check).
WAIT_SECONDS = 2.0
HOLD_SECONDS = 1.5
# A new track whose first box lies mostly (this share of the smaller box) where a track of the
# event was last seen, within end_after_seconds, is the same person found again.
REACQUIRE_OVERLAP = 0.5
# ... or where that track would be by then at its speed (at most this far ahead).
PREDICT_SECONDS = 1.0


@dataclass
class Snapshot:
    score: float
    t: float
    box: Box
    frame: np.ndarray  # BGR analysis frame


@dataclass(frozen=True)
class Sighting:
    """Where and when a track of the event was last seen, and how fast it moved (px/s)."""

    box: Box
    t: float
    velocity: tuple[float, float] = (0.0, 0.0)

    def predicted(self, t: float) -> Box:
        dt = min(max(t - self.t, 0.0), PREDICT_SECONDS)
        return self.box.shift(self.velocity[0] * dt, self.velocity[1] * dt)


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
    members: dict[int, Sighting] = field(default_factory=dict)  # every track of the event: where, when last
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

    def local_event(self, snapshot: SnapshotRef | None, pre_roll: float, post_roll: float) -> LocalEvent:
        """This change as it is stored and shipped: the wire message, made once, here."""
        event = self.event
        start, end = event.clip_window(pre_roll, post_roll)
        detail = PersonDetail(
            zone=event.zone,
            label=event.label,
            max_score=round(event.max_score, 4),
            persons=len(event.track_ids),
            model=event.model,
            clip=ClipWindow(start=start, end=end),
        )
        message = Event(
            id=event.id,
            seq=self.seq,
            kind="person",
            phase=self.phase,
            camera=event.camera,
            time=event.start,
            end=event.end,
            detail=detail.model_dump(),
            snapshot=snapshot,
        )
        return LocalEvent(message=message)


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
            verdict = self._newcomer(event, track, t, live)
            if verdict == "wait":
                return []
            joins = verdict == "joins"
            if verdict == "new":
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
                members={track.id: Sighting(track.box, t, track.velocity)},
                snapshot=Snapshot(score, t, track.box, frame().copy()),
            )
            self.open[zone] = event
            return [*ended, EventChange("new", event, 0)]
        event.last_seen = t
        changed = False
        if track.id not in event.members and joins:
            event.track_ids.add(track.id)  # another person
            changed = True
        event.members[track.id] = Sighting(track.box, t, track.velocity)
        event.max_score = max(event.max_score, score)
        best = event.snapshot
        if best is None or score >= best.score + UPDATE_SCORE_STEP:
            event.snapshot = Snapshot(score, t, track.box, frame().copy())
            changed = True
        if not changed:
            return []
        event.seq += 1
        return [EventChange("update", event, event.seq)]

    def _newcomer(
        self, event: PersonEvent, newcomer: Track, t: float, live: dict[int, Track]
    ) -> Literal["joins", "found again", "new", "wait"]:
        """A confirmed person not yet in the open event: another person joining it, one of its
        people found again in place, or someone new after they all left. While the event's people
        are still tracked but were missed at their last check (leaving, or hidden for a moment),
        the answer waits for the tracker, at most WAIT_SECONDS after the newcomer appeared."""
        present = [live[i] for i in event.members if i in live]
        if any(track.misses == 0 for track in present):
            return "joins"
        if present:
            if t - newcomer.first_seen < WAIT_SECONDS:
                return "wait"
            if any(newcomer.first_seen - track.last_seen <= HOLD_SECONDS for track in present):
                return "joins"
        if _found_again(event, newcomer, self.settings.end_after_seconds):
            return "found again"
        return "new"

    def _end(self, zone: str, event: PersonEvent) -> EventChange:
        event.end = event.last_seen
        del self.open[zone]
        event.seq += 1
        return EventChange("end", event, event.seq)


def _found_again(event: PersonEvent, newcomer: Track, within: float) -> bool:
    """The newcomer appeared where a track of the event was last seen, at most `within` s before
    (or where it would be by then at its speed)."""
    first = newcomer.first_box or newcomer.box
    return any(
        newcomer.first_seen - seen.t <= within
        and max(_overlap(first, seen.box), _overlap(first, seen.predicted(newcomer.first_seen))) >= REACQUIRE_OVERLAP
        for seen in event.members.values()
    )


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box: 1 when one box holds the other (a head found in a body box)."""
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    smaller = min(a.area, b.area)
    return ix * iy / smaller if smaller > 0 else 0.0
