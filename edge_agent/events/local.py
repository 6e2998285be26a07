"""The event as this box keeps it: one typed record from where it is made to where it leaves.

Where an event is made, it becomes the wire `Event` once: a person event's change (new,
update, end) in `analysis.save_change`, a camera or storage event in `EventStore.record`, a
test alarm in `test_alarm`. `LocalEvent` holds that message; events.db stores it as the
message's JSON and the shipper puts exactly that message in the outbox. Nothing picks it
apart on the way, so a field added where the event is made reaches the hub, or the contract
refuses it at the place it was made.

events.db files written before this module kept a flat `detail` dict per event;
`legacy_message` reads that shape (the store migrates such rows when it opens the file).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contract import Event, SnapshotRef
from contract.messages import EventKind
from edge_agent.events.ids import new_event_id


class ClipWindow(BaseModel):
    """The stretch of video worth keeping around a person event (pre- and post-roll included)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    start: float
    end: float


class PersonDetail(BaseModel):
    """`Event.detail` of a person event: what the tracker knows about it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    zone: str | None = Field(None, description="The zone the event is in; None on a camera without zones.")
    label: str = Field("person", description="What the detector saw.")
    max_score: float = Field(ge=0, description="The best detection score of the event so far.")
    persons: int = Field(ge=0, description="People in the event so far (a person found again counts once).")
    model: str = Field(description="The detection model.")
    clip: ClipWindow | None = None


class LocalEvent(BaseModel):
    """One event in events.db: the wire message itself, built where the event was made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message: Event

    @classmethod
    def instant(cls, kind: EventKind, camera: str | None, time: float, **detail: Any) -> LocalEvent:
        """An event that happens at one moment (camera offline or back, disk full, test alarm)."""
        test = kind == "test"
        message = Event(
            id=new_event_id(time), kind=kind, phase="instant", camera=camera, time=time, test=test, detail=detail
        )
        return cls(message=message)

    @property
    def id(self) -> str:
        return self.message.id

    @property
    def kind(self) -> EventKind:
        return self.message.kind

    @property
    def camera(self) -> str | None:
        return self.message.camera

    @property
    def time(self) -> float:
        return self.message.time

    @property
    def ended(self) -> float | None:
        """When the event stopped, for retention: an instant event when it happened, a person event
        at its end (None while it is still open)."""
        return self.message.time if self.message.phase == "instant" else self.message.end

    @property
    def person(self) -> PersonDetail | None:
        """The typed detail of a person event (None for other kinds)."""
        if self.message.kind != "person":
            return None
        return PersonDetail.model_validate(self.message.detail)


def legacy_message(event_id: str, kind: str, camera: str | None, time: float, detail: dict[str, Any]) -> Event:
    """The wire message of an event kept in the old flat shape: a person event's `phase`, `seq`,
    `end` and snapshot paths were mixed into `detail` with what the hub reads there. Unlike the
    old shipping code this keeps every other key (it dropped `label`). A person event without an
    `end` key ends when it started: that is how the old store aged it out."""
    rest = dict(detail)
    if kind == "person":
        phase, seq = rest.pop("phase", "new"), rest.pop("seq", 0)
        end = rest.pop("end", time)
        path, crop = rest.pop("snapshot", None), rest.pop("snapshot_crop", None)
        snapshot = SnapshotRef(path=path, crop=crop) if path else None
        for copied in ("id", "camera", "start"):  # the summary repeated these
            rest.pop(copied, None)
    else:
        phase, seq, end, snapshot = "instant", 0, None, None
    return Event.model_validate(
        {
            "id": event_id,
            "seq": seq,
            "kind": kind,
            "phase": phase,
            "camera": camera,
            "time": time,
            "end": end,
            "test": kind == "test",
            "detail": rest,
            "snapshot": snapshot,
        }
    )
