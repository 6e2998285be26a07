"""What the link's sender knows about its current connection: which outbox rows are in flight
under which packet id, how far along the outbox it has sent, and the messages the broker refused
(a v5 PUBACK with a failure reason), waiting to be published again with backoff."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from edge_agent.comms.outbox import Outbox, OutboxMessage


@dataclass
class SenderState:
    retry_delay: float  # the pause before refused messages are published again
    epoch: int = -1
    cursor: int = 0  # the highest seq handed to the broker in this epoch
    in_flight: dict[int, int] = field(default_factory=dict)  # mid -> seq
    refused: set[int] = field(default_factory=set)  # seqs the broker refused, waiting for retry_at
    retrying: set[int] = field(default_factory=set)  # seqs published again, not acknowledged yet
    retry_at: float | None = None  # monotonic time of the next retry of `refused`

    def new_connection(self, epoch: int) -> None:
        """Everything unacknowledged goes again, from the oldest (refused messages included, at once)."""
        self.epoch, self.cursor = epoch, 0
        self.in_flight.clear()
        self.refused.clear()
        self.retrying.clear()
        self.retry_at = None

    def refuse(self, seq: int, retry_max: float) -> None:
        """The broker refused `seq`: keep it for the next retry, which backs off while refusals go on."""
        self.refused.add(seq)
        if self.retry_at is None:
            self.retry_at = time.monotonic() + self.retry_delay
            self.retry_delay = min(self.retry_delay * 2, retry_max)

    def refused_rows(self, outbox: Outbox, room: int) -> list[OutboxMessage]:
        """The refused messages still in the outbox, oldest first, at most `room` of them."""
        rows: list[OutboxMessage] = []
        for seq in sorted(self.refused):
            if len(rows) == room:
                break
            found = outbox.pending(1, after=seq - 1)
            if found and found[0].seq == seq:
                rows.append(found[0])
            else:
                self.refused.discard(seq)  # no longer queued (dropped when the outbox was full)
        return rows
