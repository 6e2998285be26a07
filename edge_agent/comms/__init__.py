"""The agent's side of the MQTT link: durable outbox, MQTT session, heartbeats, test alarms.

Importing this package loads paho-mqtt and the wire contract, no video or ML library.
"""

from contract.broker import parse_broker_url
from edge_agent.comms.heartbeat import HeartbeatBuilder
from edge_agent.comms.link import LinkStats, MqttLink, event_priority
from edge_agent.comms.outbox import (
    LOCK_FILE,
    OUTBOX_DB,
    PRIORITY_EVENT,
    PRIORITY_STATUS,
    PRIORITY_TEST,
    AgentLock,
    AgentLockHeld,
    Outbox,
    OutboxMessage,
)
from edge_agent.comms.test_alarm import TestAlarmResult, send_test_alarms

__all__ = [
    "LOCK_FILE",
    "OUTBOX_DB",
    "PRIORITY_EVENT",
    "PRIORITY_STATUS",
    "PRIORITY_TEST",
    "AgentLock",
    "AgentLockHeld",
    "HeartbeatBuilder",
    "LinkStats",
    "MqttLink",
    "Outbox",
    "OutboxMessage",
    "TestAlarmResult",
    "event_priority",
    "parse_broker_url",
    "send_test_alarms",
]
