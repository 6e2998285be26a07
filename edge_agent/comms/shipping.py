"""Stored events -> the outbox: the event store's shipper.

The event store (which is given an `EventShipper` when it is made) calls `ship` right after
committing an event and marks the event `queued` when its message is in the outbox. The
message is the one the event was made with (`LocalEvent.message`): nothing is picked out of it
here. A person event's snapshot follows on its own topic at the start and at the end.
"""

from __future__ import annotations

import logging
from pathlib import Path

from contract import ContractError
from edge_agent.comms.outbox import Added
from edge_agent.comms.writer import OutboxWriter
from edge_agent.events.local import LocalEvent

log = logging.getLogger(__name__)

SNAPSHOT_PHASES = ("new", "end")  # the first picture at once, the best one when it is over


class EventShipper:
    def __init__(self, writer: OutboxWriter, root: Path) -> None:
        self.writer = writer
        self.root = root  # snapshot paths are relative to it

    def ship(self, event: LocalEvent) -> Added | None:
        """Commit the event's message (and, at its start and end, its snapshot) to the outbox;
        what the outbox did with the message, None when it could not be queued."""
        try:
            added = self.writer.event(event.message)
        except Exception:  # an event that cannot be encoded must not stop the camera that raised it
            log.exception("event %s (%s) could not be queued for the hub", event.id, event.kind)
            return None
        snapshot = event.message.snapshot
        if snapshot is not None and event.message.phase in SNAPSHOT_PHASES:
            self._ship_snapshot(event.id, self.root / snapshot.path)
        return added

    def _ship_snapshot(self, event_id: str, path: Path) -> None:
        """The snapshot travels on its own topic after the event, so the alert itself stays small
        and a slow link delivers the alert first. The end snapshot (the best) replaces the first."""
        try:
            self.writer.snapshot(event_id, path.read_bytes())
        except (OSError, ContractError) as exc:
            log.warning("snapshot of event %s not sent: %s", event_id, exc)
