"""Allow-lists to the gate boxes: built from hub.db, signed with the hub's list key, sent on
.../acl (contract/access.py) as soon as they change.

`ListSender` watches `list_changes` (a cheap query every `poll_seconds`, and at once when a route
calls `wake()`), so a revocation leaves the hub well within a second. For each gate box (a box
with doors bound in `gate_doors`) that is online it sends:

- a snapshot (every card of the box's buildings) when the box has never had one, when its doors
  changed, or when it reports no list;
- a delta (the state of every card changed since a version it holds) when its buildings changed,
  when it comes back online (from the lower of the version sent and the version it last reported,
  so a heartbeat that predates the last list does no harm), or when the version it reports lags
  the one sent for longer than `resend_seconds` (a list lost or refused).

The box is the judge: it applies a list only if the signature holds and the version follows its
own; a duplicate is refused as a replay and does no harm.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.access import (
    AccessBody,
    AccessEntry,
    AccessGroup,
    AccessHoliday,
    AccessListPart,
    AccessSchedule,
    digest_of,
    pack_body,
    signed_bytes,
    split_body,
)
from contract.messages import encode
from contract.topics import QOS, topic
from hub.evidence.keys import key_id, load_or_create, public_b64, raw_public
from hub.services.worker import PollingWorker

log = logging.getLogger("diaolou.hub.lists")
LIST_KEY_FILE = "access-list-signing-key.pem"
POLL_SECONDS = 0.2
RESEND_SECONDS = 30.0
Publish = Callable[[str, bytes, int], bool]
# Set by a route that just changed a card (the API and the sender share the hub's process): the
# sender goes now rather than at its next tick. The CLI, another process, waits for the tick.
_WAKE = threading.Event()


def wake() -> None:
    _WAKE.set()


_ENTRY = (
    "SELECT c.format, c.bits, c.facility, c.number, c.raw, c.state, c.valid_from, c.valid_until, c.max_uses, "
    "r.employee_no, r.name, r.building, r.room, r.kind, r.id AS rid "
    "FROM cards c JOIN residents r ON r.id = c.resident_id "
)


def list_key(data_dir: Path) -> Ed25519PrivateKey:
    return load_or_create(data_dir, LIST_KEY_FILE)


def list_public_key(data_dir: Path) -> str:
    """What a gate's `hub.list_key` is set to (base64 of the raw 32 bytes)."""
    return public_b64(raw_public(list_key(data_dir)))


@dataclass(frozen=True)
class GateList:
    site: str
    device: str
    kind: Literal["snapshot", "delta"]
    version: int
    base: int
    entries: list[AccessEntry]
    groups: list[AccessGroup] = field(default_factory=list)
    schedules: list[AccessSchedule] = field(default_factory=list)
    holidays: list[AccessHoliday] = field(default_factory=list)


def gate_buildings(conn: sqlite3.Connection, site: str, device: str) -> list[str]:
    rows = conn.execute("SELECT DISTINCT building FROM gate_doors WHERE site = ? AND device = ?", (site, device))
    return sorted(r[0] for r in rows.fetchall())


def _marks(values: list[str]) -> str:
    return ",".join("?" * len(values))


def _entry(row: sqlite3.Row, buildings: list[str], groups: dict[int, list[str]]) -> AccessEntry:
    """A card as this gate sees it: `removed` once its holder neither lives in nor is granted one
    of the gate's buildings (moved out, left a group)."""
    member_of = groups.get(row["rid"], [])
    on_gate = row["building"] in buildings or bool(member_of)
    state = row["state"] if on_gate else "removed"
    return AccessEntry(
        format=row["format"],
        bits=row["bits"],
        facility=row["facility"],
        number=row["number"],
        raw=row["raw"],
        state="removed" if state == "returned" else state,
        employee_no=row["employee_no"],
        name=row["name"],
        building=row["building"],
        room=row["room"],
        kind=row["kind"],
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        max_uses=row["max_uses"],
        groups=member_of,
    )


def gate_groups(conn: sqlite3.Connection, buildings: list[str]) -> tuple[list[AccessGroup], list[AccessSchedule]]:
    """The groups granting one of `buildings` (only those buildings shown) and their schedules."""
    rows = conn.execute(
        f"SELECT g.name, g.schedule, gb.building FROM access_groups g JOIN access_group_buildings gb "
        f"ON gb.group_name = g.name WHERE gb.building IN ({_marks(buildings)}) ORDER BY g.name, gb.building",
        buildings,
    ).fetchall()
    grants: dict[str, list[str]] = {}
    when: dict[str, str | None] = {}
    for r in rows:
        grants.setdefault(r["name"], []).append(r["building"])
        when[r["name"]] = r["schedule"]
    groups = [AccessGroup(name=n, buildings=b, schedule=when[n]) for n, b in grants.items()]
    used = sorted({s for s in when.values() if s is not None})
    schedules = [
        AccessSchedule(
            name=r["name"],
            segments=[tuple(x) for x in json.loads(r["segments"])],
            closed_on_holidays=bool(r["closed_on_holidays"]),
        )
        for r in conn.execute(
            f"SELECT * FROM access_schedules WHERE name IN ({_marks(used)}) ORDER BY name", used
        ).fetchall()
    ]
    return groups, schedules


def _memberships(conn: sqlite3.Connection, groups: list[AccessGroup]) -> dict[int, list[str]]:
    names = [g.name for g in groups]
    out: dict[int, list[str]] = {}
    for r in conn.execute(
        f"SELECT resident_id, group_name FROM resident_groups WHERE group_name IN ({_marks(names)}) "
        "ORDER BY group_name",
        names,
    ).fetchall():
        out.setdefault(r[0], []).append(r[1])
    return out


def latest_version(conn: sqlite3.Connection, buildings: list[str]) -> int:
    if not buildings:
        return 0
    row = conn.execute(f"SELECT max(version) FROM list_changes WHERE building IN ({_marks(buildings)})", buildings)
    return int(row.fetchone()[0] or 0)


def build_list(conn: sqlite3.Connection, site: str, device: str, base: int | None) -> GateList:
    """A snapshot (base None) or the delta since `base`, at the newest version of the box's buildings.
    A snapshot is at least version 1, so a box that has nothing (version 0) always takes it. The
    cards are those of residents of the box's buildings and of members of groups granting them."""
    buildings = gate_buildings(conn, site, device)
    marks = _marks(buildings)
    version = max(latest_version(conn, buildings), 1)
    groups, schedules = gate_groups(conn, buildings)
    members = _memberships(conn, groups)
    if base is None:
        rows = conn.execute(
            _ENTRY + f"WHERE (r.building IN ({marks}) OR r.id IN ({_marks([str(m) for m in members])})) "
            "AND c.state IN ('active', 'suspended') ORDER BY c.id",
            [*buildings, *members],
        ).fetchall()
        kind: Literal["snapshot", "delta"] = "snapshot"
    else:
        rows = conn.execute(
            _ENTRY + f"WHERE c.id IN (SELECT card_id FROM list_changes WHERE version > ? AND building IN ({marks})) "
            "ORDER BY c.id",
            [base, *buildings],
        ).fetchall()
        kind = "delta"
    entries = [_entry(r, buildings, members) for r in rows]
    holidays = [
        AccessHoliday(day=r[0], name=r[1]) for r in conn.execute("SELECT day, name FROM access_holidays ORDER BY day")
    ]
    return GateList(site, device, kind, version, base or 0, entries, groups, schedules, holidays)


def sign_list(key: Ed25519PrivateKey, gate_list: GateList, issued: float | None = None) -> list[bytes]:
    """The encoded AccessListPart payloads of `gate_list`, signed."""
    g = gate_list
    body = pack_body(AccessBody(entries=g.entries, groups=g.groups, schedules=g.schedules, holidays=g.holidays))
    slices = split_body(body)
    issued = time.time() if issued is None else issued
    digest = digest_of(body)
    g = gate_list
    header = signed_bytes(g.site, g.device, g.kind, g.version, g.base, issued, len(slices), digest)
    signature = base64.b64encode(key.sign(header)).decode("ascii")
    kid = key_id(raw_public(key))
    return [
        encode(
            AccessListPart(
                site=g.site,
                device=g.device,
                kind=g.kind,
                version=g.version,
                base=g.base,
                issued=issued,
                part=i,
                parts=len(slices),
                digest=digest,
                key_id=kid,
                signature=signature,
                data=data,
            )
        )
        for i, data in enumerate(slices)
    ]


# Gate boxes with what was sent, what they last reported and when they last came online.
_GATES = """
SELECT g.site, g.device, l.sent_version, l.sent, l.needs_snapshot, d.state, d.status_received,
       d.last_heartbeat FROM (SELECT DISTINCT site, device FROM gate_doors) g
LEFT JOIN gate_lists l ON l.site = g.site AND l.device = g.device
LEFT JOIN devices d ON d.site = g.site AND d.device = g.device
"""


# What would make a round do anything: a new list version, a box (re)connecting, a door bound.
_FINGERPRINT = """
SELECT (SELECT max(version) FROM list_changes), (SELECT max(status_received) FROM devices),
       (SELECT count(*) FROM gate_doors)
"""


def reported_version(last_heartbeat: str | None) -> int | None:
    if not last_heartbeat:
        return None
    try:
        value = json.loads(last_heartbeat).get("access_list_version")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def plan(row: sqlite3.Row, latest: int, now: float, resend_seconds: float) -> int | bool | None:
    """What gate `row` needs: False nothing, None a snapshot, an int a delta from that version."""
    reported = reported_version(row["last_heartbeat"])
    sent: int | None = row["sent_version"]
    sent_at: float = row["sent"] or 0.0
    if row["needs_snapshot"] is None or row["needs_snapshot"] or sent is None:
        return None
    if (row["status_received"] or 0) > sent_at:  # back online since the last send
        if not reported:
            return None
        # The heartbeat may predate the last list applied: a delta from the lower of the two
        # covers both (the gate accepts a delta whose base is at or below what it holds).
        return min(reported, sent) if reported < latest else False
    if latest > sent:
        return sent
    if reported is not None and reported < sent and now - sent_at > resend_seconds:
        return reported or None
    return False


class ListSender:
    def __init__(
        self,
        db_path: Path,
        data_dir: Path,
        publish: Publish,
        poll_seconds: float = POLL_SECONDS,
        resend_seconds: float = RESEND_SECONDS,
    ) -> None:
        self.db_path = db_path
        self.key = list_key(data_dir)
        self.publish = publish
        self.poll_seconds = poll_seconds
        self.resend_seconds = resend_seconds
        self._marks: tuple[object, ...] | None = None
        self.worker = PollingWorker("hub-lists", db_path, self._step, poll_seconds, join=5, wake=_WAKE)

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def _step(self, conn: sqlite3.Connection) -> bool:
        self.run_once(conn)
        return False  # the next round after poll_seconds, or at once when a route wakes it

    def run_once(self, conn: sqlite3.Connection) -> int:
        """Send what each online gate needs; returns how many lists were sent. A round in which no
        list changed, no box came online and no resend is due costs one small query."""
        now = time.time()
        marks = (*conn.execute(_FINGERPRINT).fetchone(), int(now // self.resend_seconds))
        if marks == self._marks:
            return 0
        sent, complete = self._send_due(conn, now)
        if complete:  # a round cut short by a lost connection is done again
            self._marks = marks
        return sent

    def _send_due(self, conn: sqlite3.Connection, now: float) -> tuple[int, bool]:
        sent = 0
        for row in conn.execute(_GATES).fetchall():
            if row["state"] != "online":
                continue
            buildings = gate_buildings(conn, row["site"], row["device"])
            decision = plan(row, max(latest_version(conn, buildings), 1), now, self.resend_seconds)
            if decision is False:
                if (row["status_received"] or 0) > (row["sent"] or 0):
                    self._mark(conn, row["site"], row["device"], row["sent_version"], now)
                continue
            gate_list = build_list(conn, row["site"], row["device"], None if decision is None else int(decision))
            if not self._send(gate_list):
                return sent, False  # not connected: the next round tries again
            self._mark(conn, row["site"], row["device"], gate_list.version, now)
            log.info(
                "sent %s v%d (base %d, %d cards) to %s/%s",
                gate_list.kind,
                gate_list.version,
                gate_list.base,
                len(gate_list.entries),
                row["site"],
                row["device"],
            )
            sent += 1
        return sent, True

    def _send(self, gate_list: GateList) -> bool:
        name = topic(gate_list.site, gate_list.device, "acl")
        return all(self.publish(name, payload, QOS["acl"]) for payload in sign_list(self.key, gate_list))

    @staticmethod
    def _mark(conn: sqlite3.Connection, site: str, device: str, version: int | None, now: float) -> None:
        conn.execute(
            "INSERT INTO gate_lists (site, device, sent_version, sent, needs_snapshot) VALUES (?, ?, ?, ?, 0) "
            "ON CONFLICT (site, device) DO UPDATE SET sent_version = excluded.sent_version, sent = excluded.sent, "
            "needs_snapshot = 0",
            (site, device, version, now),
        )
