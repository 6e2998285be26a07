"""The wire contract between agents and the hub: MQTT topics and message payloads.

Defined once, imported by both sides. Importing it loads pydantic and nothing else of weight
(no video or ML library), so the hub and small tools can use it. docs/mqtt.md is generated
from it (docs/gen_mqtt_doc.py).
"""

from contract.access import AccessEntry, AccessListPart
from contract.messages import (
    MAX_PAYLOAD_BYTES,
    PROTOCOL_VERSION,
    CameraHealth,
    Command,
    ContractError,
    Event,
    Heartbeat,
    Reply,
    SnapshotRef,
    Status,
    check_snapshot,
    decode,
    encode,
)
from contract.topics import ROOT, TopicInfo, device_prefix, hub_subscriptions, parse_topic, topic

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "PROTOCOL_VERSION",
    "ROOT",
    "AccessEntry",
    "AccessListPart",
    "CameraHealth",
    "Command",
    "ContractError",
    "Event",
    "Heartbeat",
    "Reply",
    "SnapshotRef",
    "Status",
    "TopicInfo",
    "check_snapshot",
    "decode",
    "device_prefix",
    "encode",
    "hub_subscriptions",
    "parse_topic",
    "topic",
]
