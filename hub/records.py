"""What ingest hands to the database and, once committed, to the fan-out: one `Record` per MQTT message.

A record is either a contract message that passed validation (`message` set) or a rejection
(`cause` set). The site and device always come from the topic, never from the payload: the
broker's ACL vouches for the topic (a device may publish only under its own prefix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from contract import Event, Heartbeat, Reply, Status

RecordKind = Literal["status", "heartbeat", "event", "reply", "snapshot", "rejection"]
Message = Status | Heartbeat | Event | Reply


@dataclass(frozen=True, slots=True)
class Record:
    kind: RecordKind
    site: str
    device: str
    received: float  # hub clock, epoch seconds
    message: Message | None = None
    retained: bool = False  # a retained copy (or amqtt's replay of a queued message): old news, not a sign of life
    cause: str | None = None  # rejections: oversized, malformed, version, invalid, topic
    error: str | None = None  # rejections: what was wrong, for the operator
    topic: str | None = None  # rejections: the topic as received (truncated)
    name: str | None = None  # snapshots: the event id
    data: bytes | None = None  # snapshots: the JPEG
