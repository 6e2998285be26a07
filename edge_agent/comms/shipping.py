"""Local events -> wire `Event` messages in the outbox.

The event store calls `EventShipper.ship` right after committing an event. Events whose
shipping did not happen (a crash between the two commits: they are separate SQLite files) are
found by their `sent = 0` flag and shipped again when the agent starts; the hub stores by
(id, phase, seq), so shipping twice is harmless.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from contract import ContractError, Event, SnapshotRef, check_snapshot, topic
from edge_agent.comms.link import MqttLink
from edge_agent.events.store import EventStore, LocalEvent

log = logging.getLogger(__name__)

PRIORITY_SNAPSHOT = 1  # below events (2): a full outbox drops pictures before alerts
_TOP_LEVEL = {"id", "camera", "start", "end", "phase", "seq", "snapshot", "snapshot_crop", "label"}


def to_wire(event: LocalEvent) -> Event:
    detail: dict[str, Any] = dict(event.detail)
    if event.kind == "person":
        phase, seq = detail.get("phase", "new"), int(detail.get("seq", 0))
        snapshot = (
            SnapshotRef(path=detail["snapshot"], crop=detail.get("snapshot_crop")) if detail.get("snapshot") else None
        )
        end = detail.get("end")
    else:
        phase, seq, snapshot, end = "instant", 0, None, None
    return Event(
        id=event.id,
        seq=seq,
        kind=event.kind,
        phase=phase,
        camera=event.camera,
        time=event.time,
        end=end,
        test=event.kind == "test",
        detail={k: v for k, v in detail.items() if k not in _TOP_LEVEL},
        snapshot=snapshot,
    )


class EventShipper:
    def __init__(self, link: MqttLink, store: EventStore, root: Path, site: str, device: str) -> None:
        self.link = link
        self.store = store
        self.root = root
        self.site, self.device = site, device

    def ship(self, event: LocalEvent) -> None:
        try:
            seq = self.link.send_event(to_wire(event))
        except Exception:  # an event that cannot be encoded must not stop the camera that raised it
            log.exception("event %s (%s) could not be queued for the hub", event.id, event.kind)
            return
        if seq is not None:
            self.store.mark_sent(event.id)
        if event.kind == "person" and event.detail.get("phase") in ("new", "end") and event.detail.get("snapshot"):
            self._ship_snapshot(event.id, self.root / event.detail["snapshot"])

    def _ship_snapshot(self, event_id: str, path: Path) -> None:
        """The snapshot travels on its own topic after the event, so the alert itself stays small
        and a slow link delivers the alert first. The end snapshot (the best) replaces the first."""
        try:
            data = check_snapshot(path.read_bytes())
        except (OSError, ContractError) as exc:
            log.warning("snapshot of event %s not sent: %s", event_id, exc)
            return
        self.link.outbox.enqueue(
            topic(self.site, self.device, "snapshot", event_id), data, qos=1, priority=PRIORITY_SNAPSHOT
        )
        self.link.notify()

    def ship_unsent(self) -> int:
        """Queue events that were stored but never reached the outbox (a crash in between)."""
        unsent = self.store.unsent()
        for event in unsent:
            self.ship(event)
        return len(unsent)
