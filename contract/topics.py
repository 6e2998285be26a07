"""Topics: diaolou/v1/<site>/<device>/<kind>[/<name>].

The site and device are in the topic so the broker's ACL can confine a device to its own
prefix (it may publish only under diaolou/v1/<site>/<device>/ and read only its cmd/ topics),
and so the hub knows who sent a message without trusting the payload.

| kind | direction | QoS | retained | payload |
| status | agent -> hub | 1 | yes | Status (last will: offline) |
| heartbeat | agent -> hub | 0 | no | Heartbeat |
| event | agent -> hub | 1 | no | Event |
| cmd/<name> | hub -> agent | 1 | no | Command |
| reply | agent -> hub | 1 | no | Reply |
| snapshot/<event id> | agent -> hub | 1 | no | the event's snapshot, a JPEG (raw bytes, not JSON) |
| acl | hub -> agent | 1 | no | AccessListPart (contract/access.py): a gate's signed allow-list |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ROOT = "diaolou"
VERSION = "v1"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # the config's site/device/camera alphabet
NAME = re.compile(NAME_PATTERN)
# An event's ULID (edge_agent.events.ids), also the snapshot topic's last level. 26 Crockford
# base-32 digits carry 130 bits; a ULID is 128, so the first digit is at most 7.
EVENT_ID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"
EVENT_ID = re.compile(EVENT_ID_PATTERN)

Kind = Literal["status", "heartbeat", "event", "cmd", "reply", "snapshot", "acl"]
KINDS: tuple[Kind, ...] = ("status", "heartbeat", "event", "cmd", "reply", "snapshot", "acl")
NAMED: tuple[Kind, ...] = ("cmd", "snapshot")  # kinds whose topic ends in a name
QOS: dict[Kind, int] = {"status": 1, "heartbeat": 0, "event": 1, "cmd": 1, "reply": 1, "snapshot": 1, "acl": 1}


class TopicError(ValueError):
    pass


@dataclass(frozen=True)
class TopicInfo:
    site: str
    device: str
    kind: Kind
    name: str | None = None  # the command name for cmd/<name>, the event id for snapshot/<id>


def _check(value: str, what: str) -> str:
    if not NAME.match(value):
        raise TopicError(f"invalid {what} {value!r}: lower-case letters, digits, - and _ only")
    return value


def device_prefix(site: str, device: str) -> str:
    return f"{ROOT}/{VERSION}/{_check(site, 'site')}/{_check(device, 'device')}"


def _check_name(kind: str, name: str) -> str:
    if kind == "snapshot":
        if not EVENT_ID.match(name):
            raise TopicError(f"invalid event id {name!r} in a snapshot topic")
        return name
    return _check(name, "command")


def topic(site: str, device: str, kind: Kind, name: str | None = None) -> str:
    if kind not in KINDS:
        raise TopicError(f"unknown topic kind {kind!r}")
    if (kind in NAMED) != (name is not None):
        raise TopicError("command and snapshot topics need a name, and only they have one")
    base = f"{device_prefix(site, device)}/{kind}"
    return f"{base}/{_check_name(kind, name)}" if name is not None else base


def parse_topic(value: str) -> TopicInfo:
    parts = value.split("/")
    if len(parts) < 5 or parts[0] != ROOT:
        raise TopicError(f"not a {ROOT} topic: {value!r}")
    if parts[1] != VERSION:
        raise TopicError(f"unsupported protocol version {parts[1]!r} in {value!r} (this side speaks {VERSION})")
    site, device, kind = _check(parts[2], "site"), _check(parts[3], "device"), parts[4]
    if kind in NAMED and len(parts) == 6:
        return TopicInfo(site, device, kind, _check_name(kind, parts[5]))
    if kind in KINDS and kind not in NAMED and len(parts) == 5:
        return TopicInfo(site, device, kind)
    raise TopicError(f"unknown topic {value!r}")


def hub_subscriptions() -> list[str]:
    """What the hub reads: every device's status, heartbeats, events, replies and snapshots."""
    kinds = [f"{ROOT}/{VERSION}/+/+/{kind}" for kind in ("status", "heartbeat", "event", "reply")]
    return [*kinds, f"{ROOT}/{VERSION}/+/+/snapshot/+"]
