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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

ROOT = "diaolou"
VERSION = "v1"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # the config's site/device/camera alphabet

Kind = Literal["status", "heartbeat", "event", "cmd", "reply"]
KINDS: tuple[Kind, ...] = ("status", "heartbeat", "event", "cmd", "reply")
QOS: dict[Kind, int] = {"status": 1, "heartbeat": 0, "event": 1, "cmd": 1, "reply": 1}


class TopicError(ValueError):
    pass


@dataclass(frozen=True)
class TopicInfo:
    site: str
    device: str
    kind: Kind
    name: str | None = None  # the command name for cmd/<name>


def _check(value: str, what: str) -> str:
    if not NAME.match(value):
        raise TopicError(f"invalid {what} {value!r}: lower-case letters, digits, - and _ only")
    return value


def device_prefix(site: str, device: str) -> str:
    return f"{ROOT}/{VERSION}/{_check(site, 'site')}/{_check(device, 'device')}"


def topic(site: str, device: str, kind: Kind, name: str | None = None) -> str:
    if kind not in KINDS:
        raise TopicError(f"unknown topic kind {kind!r}")
    if (kind == "cmd") != (name is not None):
        raise TopicError("a command topic needs a name, and only a command topic has one")
    base = f"{device_prefix(site, device)}/{kind}"
    return f"{base}/{_check(name, 'command')}" if name is not None else base


def parse_topic(value: str) -> TopicInfo:
    parts = value.split("/")
    if len(parts) < 5 or parts[0] != ROOT:
        raise TopicError(f"not a {ROOT} topic: {value!r}")
    if parts[1] != VERSION:
        raise TopicError(f"unsupported protocol version {parts[1]!r} in {value!r} (this side speaks {VERSION})")
    site, device, kind = _check(parts[2], "site"), _check(parts[3], "device"), parts[4]
    if kind == "cmd" and len(parts) == 6:
        return TopicInfo(site, device, "cmd", _check(parts[5], "command"))
    if kind in KINDS and kind != "cmd" and len(parts) == 5:
        return TopicInfo(site, device, kind)
    raise TopicError(f"unknown topic {value!r}")


def hub_subscriptions() -> list[str]:
    """What the hub reads: every device's status, heartbeats, events and replies."""
    return [f"{ROOT}/{VERSION}/+/+/{kind}" for kind in ("status", "heartbeat", "event", "reply")]
