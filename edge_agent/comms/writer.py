"""The one way a message of this box goes out: `OutboxWriter`.

Events (through the event store's shipper), their snapshots, replies to the hub's commands and
test alarms are all encoded by the contract here, committed to outbox.db with the priority
their kind earns (what a full outbox drops first), and the link is woken to send them now. The
link only reads the outbox and deletes what the broker acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable

from contract import Event, Reply, check_snapshot, encode, topic
from edge_agent.comms.outbox import PRIORITY_EVENT, PRIORITY_STATUS, PRIORITY_TEST, Added, Outbox

PRIORITY_SNAPSHOT = 1  # below events (2): a full outbox drops pictures before alerts


def event_priority(event: Event) -> int:
    # A door's open/closed changes say where the door is now; the next one says it again, so a
    # full outbox lets them go before swipes and alarms.
    return PRIORITY_TEST if event.test else PRIORITY_STATUS if event.kind == "door" else PRIORITY_EVENT


class OutboxWriter:
    """Commits messages for the broker to `outbox` (durable when a method returns). `wake` is the
    link's nudge (`MqttLink.notify`); without it the link finds them at its next poll (`test-alarm`
    beside a running agent)."""

    def __init__(self, outbox: Outbox, site: str, device: str, wake: Callable[[], None] | None = None) -> None:
        self.outbox = outbox
        self.site, self.device = site, device
        self._wake = wake

    def event(self, event: Event) -> Added:
        """An event on .../event (test alarms below real alerts); `Added.seq` None: dropped, the
        outbox being full of more important messages."""
        return self._add(topic(self.site, self.device, "event"), encode(event), event_priority(event))

    def snapshot(self, event_id: str, jpeg: bytes) -> Added:
        """An event's snapshot on .../snapshot/<event id>; ContractError when it is no JPEG or too large."""
        return self._add(topic(self.site, self.device, "snapshot", event_id), check_snapshot(jpeg), PRIORITY_SNAPSHOT)

    def reply(self, reply: Reply) -> Added:
        """The answer to a command on .../reply."""
        return self._add(topic(self.site, self.device, "reply"), encode(reply), PRIORITY_STATUS)

    def _add(self, topic_name: str, payload: bytes, priority: int) -> Added:
        added = self.outbox.add(topic_name, payload, qos=1, priority=priority)
        if self._wake is not None and added.seq is not None:
            self._wake()
        return added
