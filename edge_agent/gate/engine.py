"""The gate's decision, taken on this box alone: `decide(door, credential, at) -> Decision`.

Nothing here touches the network, so a door opens for its residents whether the link to the hub
is up or not. The rules, checked in this order (the first that refuses gives the reason):

1. the door is configured (`unknown_door`), the card is on the list (`unknown_card`);
2. the card is not `revoked`, `lost` or `suspended`, its holder not `revoked` or `suspended`;
3. now is inside the card's and the holder's validity windows (`not_yet_valid`, `expired`);
4. a card with a maximum number of uses (a visitor pass) has uses left (`visitor_uses_exhausted`);
5. the door's building is the holder's own (at any hour, holidays included), or one of the holder's
   groups grants it on a schedule that is open now (`wrong_building`; `holiday` when the schedule
   is closed for today's holiday; `outside_schedule` otherwise);
6. on an entry door with anti-passback, the holder is not already inside the area (`anti_passback`).

`decide` only reads. `admit` records what a granted passage changes (a visitor pass's uses, who is
inside an anti-passback area): the gate loop calls both; `diaolou-agent decide` only the first.
Reasons are stable keys: access logs, the hub and the pages will key on them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from edge_agent.gate.credential import Credential
from edge_agent.gate.store import DoorRow

Reason = Literal[
    "granted",
    "unknown_door",
    "unknown_card",
    "revoked",
    "lost",
    "suspended",
    "not_yet_valid",
    "expired",
    "visitor_uses_exhausted",
    "wrong_building",
    "holiday",
    "outside_schedule",
    "anti_passback",
]

_CARD = (
    "SELECT c.id, c.state, c.valid_from, c.valid_until, c.max_uses, c.uses, h.id, h.employee_no, h.name, "
    "h.building, h.room, h.state, h.valid_from, h.valid_until FROM credentials c JOIN holders h ON h.id = c.holder_id "
)
_BY_CARD = _CARD + "WHERE c.facility = ? AND c.number = ? AND c.bits = ?"
# `fc/number` typed by an installer: either Wiegand length.
_BY_FC_NUMBER = _CARD + "WHERE c.facility = ? AND c.number = ? AND c.bits IN (26, 34) ORDER BY c.bits"
_GRANTS = (
    "SELECT g.schedule_id, s.closed_on_holidays FROM holder_groups hg JOIN group_buildings gb "
    "ON gb.group_id = hg.group_id AND gb.building = ? JOIN groups g ON g.id = hg.group_id "
    "LEFT JOIN schedules s ON s.id = g.schedule_id WHERE hg.holder_id = ?"
)
_OPEN = "SELECT 1 FROM schedule_segments WHERE schedule_id = ? AND weekday = ? AND start_minute <= ? AND end_minute > ?"


@dataclass(frozen=True)
class HolderRef:
    """Who a card belongs to, as a decision reports it."""

    employee_no: str
    name: str
    building: str | None
    room: str


@dataclass(frozen=True)
class Decision:
    granted: bool
    reason: Reason
    holder: HolderRef | None
    why: str
    credential_id: int | None = field(default=None, repr=False)
    holder_id: int | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        holder = None
        if self.holder is not None:
            h = self.holder
            holder = {"employee_no": h.employee_no, "name": h.name, "building": h.building, "room": h.room}
        return {"granted": self.granted, "reason": self.reason, "holder": holder, "why": self.why}


def _refuse(reason: Reason, why: str, holder: HolderRef | None = None) -> Decision:
    return Decision(False, reason, holder, why)


class Engine:
    """Decisions for the doors of one box over its allow-list (an open gate.db connection)."""

    def __init__(self, db: sqlite3.Connection, doors: Mapping[str, DoorRow], timezone: str) -> None:
        self.db = db
        self.doors = dict(doors)
        self.zone = ZoneInfo(timezone)

    def decide(self, door: str, credential: Credential | tuple[int, int], at: float) -> Decision:
        """The decision for `credential` (or an installer's (facility, number)) at `door` at time `at`."""
        rule = self.doors.get(door)
        if rule is None:
            return _refuse("unknown_door", f"door {door!r} is not configured on this box")
        if isinstance(credential, Credential):
            facility = -1 if credential.facility is None else credential.facility
            row = self.db.execute(_BY_CARD, (facility, credential.number, credential.bits)).fetchone()
            label = credential.label
        else:
            row = self.db.execute(_BY_FC_NUMBER, credential).fetchone()
            label = f"{credential[0]}/{credential[1]}"
        if row is None:
            return _refuse("unknown_card", f"card {label} is not on this box's list")
        cid, cstate, cfrom, cuntil, max_uses, uses, hid, employee_no, name, building, room, hstate, hfrom, huntil = row
        holder = HolderRef(employee_no, name, building, room)
        refused = self._card_state(label, cstate, hstate, holder)
        if refused is None:
            refused = self._validity(label, at, cfrom, cuntil, hfrom, huntil, holder)
        if refused is None and max_uses is not None and uses >= max_uses:
            refused = _refuse("visitor_uses_exhausted", f"card {label} was used {uses} of {max_uses} times", holder)
        if refused is None:
            refused = self._building(rule, hid, building, at, holder)
        if refused is None and rule.anti_passback and rule.direction == "in":
            inside = self.db.execute(
                "SELECT inside FROM presence WHERE holder_id = ? AND area = ?", (hid, rule.area)
            ).fetchone()
            if inside is not None and inside[0]:
                refused = _refuse(
                    "anti_passback", f"{employee_no} already entered area {rule.area} and has not left it", holder
                )
        if refused is not None:
            return Decision(False, refused.reason, holder, refused.why, cid, hid)
        why = f"{employee_no} may enter building {rule.building}"
        return Decision(True, "granted", holder, why, cid, hid)

    def admit(self, door: str, decision: Decision, at: float) -> None:
        """Record a granted passage: one use of a limited card, and presence for anti-passback."""
        rule = self.doors.get(door)
        if not decision.granted or rule is None or decision.credential_id is None:
            return
        with _transaction(self.db):
            self.db.execute(
                "UPDATE credentials SET uses = uses + 1 WHERE id = ? AND max_uses IS NOT NULL",
                (decision.credential_id,),
            )
            if rule.anti_passback:
                self.db.execute(
                    "INSERT INTO presence (holder_id, area, inside, time) VALUES (?, ?, ?, ?) ON CONFLICT "
                    "(holder_id, area) DO UPDATE SET inside = excluded.inside, time = excluded.time",
                    (decision.holder_id, rule.area, int(rule.direction == "in"), at),
                )

    @staticmethod
    def _card_state(label: str, cstate: str, hstate: str, holder: HolderRef) -> Decision | None:
        if cstate == "revoked":
            return _refuse("revoked", f"card {label} was revoked", holder)
        if cstate == "lost":
            return _refuse("lost", f"card {label} was reported lost", holder)
        if cstate == "suspended":
            return _refuse("suspended", f"card {label} is suspended", holder)
        if hstate == "revoked":
            return _refuse("revoked", f"{holder.employee_no}'s access was revoked", holder)
        if hstate == "suspended":
            return _refuse("suspended", f"{holder.employee_no}'s access is suspended", holder)
        return None

    def _validity(
        self,
        label: str,
        at: float,
        cfrom: float | None,
        cuntil: float | None,
        hfrom: float | None,
        huntil: float | None,
        holder: HolderRef,
    ) -> Decision | None:
        for what, start, end in ((f"card {label}", cfrom, cuntil), (holder.employee_no, hfrom, huntil)):
            if start is not None and at < start:
                return _refuse("not_yet_valid", f"{what} is valid from {self._local(start)}", holder)
            if end is not None and at >= end:
                return _refuse("expired", f"{what} was valid until {self._local(end)}", holder)
        return None

    def _building(self, rule: DoorRow, hid: int, home: str | None, at: float, holder: HolderRef) -> Decision | None:
        if home == rule.building:
            return None
        grants = self.db.execute(_GRANTS, (rule.building, hid)).fetchall()
        if not grants:
            lives = f"lives in building {home}" if home else "has no building"
            return _refuse(
                "wrong_building", f"{holder.employee_no} {lives}; door {rule.name} is building {rule.building}", holder
            )
        local = datetime.fromtimestamp(at, self.zone)
        minute = local.hour * 60 + local.minute
        holiday = None
        for schedule_id, closed_on_holidays in grants:
            if schedule_id is None:
                return None
            if closed_on_holidays:
                if holiday is None:
                    found = self.db.execute(
                        "SELECT name FROM holidays WHERE day = ?", (local.date().isoformat(),)
                    ).fetchone()
                    holiday = "" if found is None else (found[0] or local.date().isoformat())
                if holiday:
                    continue
            if self.db.execute(_OPEN, (schedule_id, local.weekday(), minute, minute)).fetchone():
                return None
        if holiday:
            why = f"building {rule.building} is closed to {holder.employee_no} on {holiday}"
            return _refuse("holiday", why, holder)
        return _refuse(
            "outside_schedule",
            f"{holder.employee_no} may enter building {rule.building} only on schedule; not at {local:%a %H:%M}",
            holder,
        )

    def _local(self, when: float) -> str:
        return datetime.fromtimestamp(when, self.zone).isoformat(timespec="minutes")


class _transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
