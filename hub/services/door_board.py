"""The dorm manager's door board: every gate door's state now, its last decision and its alarms,
and every gate box whose allow-list is out of date, for the buildings the caller runs.

Nothing here is reported by a box as "the state": it is derived from what the hub already stores
(the box's status and when the hub last heard from it, the door's `door` contact changes, its
`access` decisions and `door_alarm` events), so the board needs no table of its own that could
drift from the events. A door is, in this order of precedence:

- `offline`: its box is offline (last will, clean stop) or the hub has heard nothing from it for
  `web.gate_silent_seconds` (the hub's clock: a box's own may be wrong). What it reported last
  may be long past, so it is not shown as current;
- `forced`: open, and a forced_open alarm came with this opening;
- `held_open`: open, and a held_open alarm came after this opening;
- `open`: open after a grant or an exit press;
- `closed`: the contact's last change was closing;
- `unknown`: the box is online but the door never reported its contact (no contact wired, or a
  box older than `door` events).

Doors are those registered at the hub (`diaolou-hub cards door`), with the building the hub gave
them, never the one a box claims: a dorm manager sees the doors, alarms and gate boxes of their
buildings and nothing else. The board names no resident: who swiped is in the access log
(searched and exported with an audit row), the board says only whether the door opened and why.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Literal

from pydantic import Field

from hub.models import ApiModel, GateListState, Principal
from hub.services import audit, cards
from hub.store import transaction

DoorState = Literal["closed", "open", "held_open", "forced", "offline", "unknown"]
AlarmKind = Literal["forced_open", "held_open", "repeated_denials", "tailgating", "other"]
OPEN_ALARMS_MAX = 200  # unacknowledged alarms on one board: beyond that, the access log
ACKED_SHOWN_SECONDS = 24 * 3600  # acknowledged alarms stay on the board for a day, with who and why
ACKED_MAX = 20
_ALARMS = ("forced_open", "held_open", "repeated_denials", "tailgating")


class Decision(ApiModel):
    """A door's newest swipe: whether the door opened and why, without the person."""

    time: float
    granted: bool
    reason: str = Field(description="granted, revoked, wrong_building, bad_read, ... (docs/gates.md).")


class AlarmAck(ApiModel):
    by: str = Field(description="The user who acknowledged it.")
    at: float = Field(description="When (epoch seconds).")
    note: str


class DoorAlarm(ApiModel):
    id: str = Field(description="The door_alarm event's id.")
    time: float
    site: str
    device: str
    door: str
    building: str
    alarm: AlarmKind
    why: str
    ack: AlarmAck | None = Field(description="None until someone acknowledges it.")


class AlarmAckRequest(ApiModel):
    note: str = Field("", max_length=500, description="What was found or done (checked, door closed, ...).")


class AckRefused(ValueError):
    """An alarm acknowledged already: the message says by whom and when."""


class Door(ApiModel):
    site: str
    device: str
    door: str
    building: str
    state: DoorState
    since: float | None = Field(description="When the door entered this state (offline: last heard from its box).")
    last_decision: Decision | None
    open_alarms: int = Field(description="Its alarms nobody has acknowledged yet.")


class BuildingDoors(ApiModel):
    building: str
    doors: list[Door]


class DoorBoard(ApiModel):
    buildings: list[BuildingDoors]
    alarms: list[DoorAlarm] = Field(
        description="Alarms not yet acknowledged (newest first), then those acknowledged in the last day."
    )
    gates: list[GateListState] = Field(description="The caller's gate boxes; `stale` ones lack list changes.")


def _may(principal: Principal | None, building: str) -> bool:
    return principal is None or principal.role == "admin" or building in principal.buildings


def _door_event(
    conn: sqlite3.Connection, site: str, device: str, door: str, kind: str, since: float | None = None
) -> sqlite3.Row | None:
    """The door's newest event of `kind` (at or after `since`), through idx_events_door."""
    sql = (
        "SELECT id, time, detail FROM events WHERE json_extract(detail, '$.door') = ? AND site = ? AND device = ? "
        "AND kind = ? AND phase = 'instant'"
    )
    params: list[object] = [door, site, device, kind]
    if since is not None:
        sql += " AND time >= ?"
        params.append(since)
    row: sqlite3.Row | None = conn.execute(sql + " ORDER BY time DESC, id DESC LIMIT 1", params).fetchone()
    return row


def _detail(row: sqlite3.Row) -> dict[str, object]:
    value = json.loads(row["detail"] or "{}")
    return value if isinstance(value, dict) else {}


def _contact_state(conn: sqlite3.Connection, site: str, device: str, door: str) -> tuple[DoorState, float | None]:
    change = _door_event(conn, site, device, door, "door")
    if change is None:
        return "unknown", None
    if _detail(change).get("open") is not True:
        return "closed", change["time"]
    opened = change["time"]
    alarms = {
        _detail(r).get("alarm")
        for r in conn.execute(
            "SELECT detail FROM events WHERE json_extract(detail, '$.door') = ? AND site = ? AND device = ? "
            "AND kind = 'door_alarm' AND phase = 'instant' AND time >= ?",
            (door, site, device, opened),
        )
    }
    if "forced_open" in alarms:
        return "forced", opened
    if "held_open" in alarms:
        return "held_open", opened
    return "open", opened


def _open_alarms(conn: sqlite3.Connection, site: str, device: str, door: str) -> int:
    """Its alarms nobody acknowledged: the door's alarms through idx_events_door (alarms are few;
    a count over every gate's alarms would walk the index of every swipe ever stored)."""
    row = conn.execute(
        "SELECT count(*) FROM events e LEFT JOIN door_alarm_acks a ON a.site = e.site AND a.device = e.device "
        "AND a.event_id = e.id WHERE json_extract(e.detail, '$.door') = ? AND e.site = ? AND e.device = ? "
        "AND e.kind = 'door_alarm' AND e.phase = 'instant' AND a.event_id IS NULL",
        (door, site, device),
    ).fetchone()
    return int(row[0])


def _decision(conn: sqlite3.Connection, site: str, device: str, door: str) -> Decision | None:
    row = _door_event(conn, site, device, door, "access")
    if row is None:
        return None
    d = _detail(row)
    return Decision(time=row["time"], granted=d.get("granted") is True, reason=str(d.get("reason") or "?")[:64])


def doors(
    conn: sqlite3.Connection, principal: Principal | None, silent_seconds: float, now: float | None = None
) -> list[BuildingDoors]:
    now = time.time() if now is None else now
    by_building: dict[str, list[Door]] = {}
    rows = conn.execute(
        "SELECT g.site, g.device, g.door, g.building, d.state AS box_state, d.last_seen FROM gate_doors g "
        "LEFT JOIN devices d ON d.site = g.site AND d.device = g.device ORDER BY g.building, g.door, g.site, g.device"
    ).fetchall()
    for r in rows:
        if not _may(principal, r["building"]):
            continue
        site, device, name = r["site"], r["device"], r["door"]
        last_seen = r["last_seen"]
        state: DoorState
        since: float | None
        if r["box_state"] != "online" or last_seen is None or now - last_seen > silent_seconds:
            state, since = "offline", last_seen
        else:
            state, since = _contact_state(conn, site, device, name)
        door = Door(
            site=site,
            device=device,
            door=name,
            building=r["building"],
            state=state,
            since=since,
            last_decision=_decision(conn, site, device, name),
            open_alarms=_open_alarms(conn, site, device, name),
        )
        by_building.setdefault(r["building"], []).append(door)
    return [BuildingDoors(building=b, doors=ds) for b, ds in sorted(by_building.items())]


def alarms(
    conn: sqlite3.Connection,
    principal: Principal | None,
    now: float | None = None,
    alarm_id: str | None = None,
) -> list[DoorAlarm]:
    """The caller's door alarms: every unacknowledged one (newest first, at most OPEN_ALARMS_MAX),
    then those acknowledged within ACKED_SHOWN_SECONDS; or, with `alarm_id`, that one alarm
    whatever its age (empty if it is not the caller's)."""
    now = time.time() if now is None else now
    # From the caller's doors to each door's alarms through idx_events_door: CROSS JOIN keeps that
    # order, and `+g.door` drops the column's affinity so the index's expression is matched by
    # equality (without it SQLite skip-scans the index, or scans every event: 70x slower at 100k).
    base = (
        "SELECT e.id, e.site, e.device, e.time, e.detail, g.door, g.building, a.username, a.acked, a.note "
        "FROM gate_doors g CROSS JOIN events e ON json_extract(e.detail, '$.door') = +g.door "
        "AND e.site = g.site AND e.device = g.device AND e.kind = 'door_alarm' "
        "LEFT JOIN door_alarm_acks a ON a.site = e.site AND a.device = e.device AND a.event_id = e.id "
        "WHERE e.phase = 'instant'"
    )
    scope, params = "", []
    if principal is not None and principal.role != "admin":
        scope = f" AND g.building IN ({','.join('?' * len(principal.buildings))})"
        params = sorted(principal.buildings)
    if alarm_id is not None:
        rows = conn.execute(base + scope + " AND e.id = ?", [*params, alarm_id]).fetchall()
    else:
        rows = conn.execute(
            base + scope + " AND a.event_id IS NULL ORDER BY e.time DESC, e.id DESC LIMIT ?",
            [*params, OPEN_ALARMS_MAX],
        ).fetchall()
        rows += conn.execute(
            base + scope + " AND a.acked >= ? ORDER BY a.acked DESC LIMIT ?",
            [*params, now - ACKED_SHOWN_SECONDS, ACKED_MAX],
        ).fetchall()
    return [_alarm(r) for r in rows]


def _alarm(r: sqlite3.Row) -> DoorAlarm:
    d = _detail(r)
    kind = d.get("alarm")
    ack = None if r["acked"] is None else AlarmAck(by=r["username"], at=r["acked"], note=r["note"])
    return DoorAlarm(
        id=r["id"],
        time=r["time"],
        site=r["site"],
        device=r["device"],
        door=r["door"],
        building=r["building"],
        alarm=kind if kind in _ALARMS else "other",
        why=str(d.get("why") or "")[:300],
        ack=ack,
    )


def board(
    conn: sqlite3.Connection, principal: Principal | None, silent_seconds: float, now: float | None = None
) -> DoorBoard:
    now = time.time() if now is None else now
    return DoorBoard(
        buildings=doors(conn, principal, silent_seconds, now),
        alarms=alarms(conn, principal, now),
        gates=cards.gate_lists(conn, principal),
    )


def acknowledge(
    conn: sqlite3.Connection, actor: audit.Actor, principal: Principal | None, alarm_id: str, note: str
) -> DoorAlarm | None:
    """Mark the caller's alarm `alarm_id` as handled, with their note, audited (`door_alarm.ack`).
    None when it is not the caller's (or not an alarm); AckRefused when it was acknowledged before."""
    with transaction(conn):
        found = alarms(conn, principal, alarm_id=alarm_id)
        if not found:
            return None
        for alarm in found:  # one, unless two boxes sent the same id
            if alarm.ack is not None:
                when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(alarm.ack.at))
                raise AckRefused(f"alarm {alarm_id} was acknowledged by {alarm.ack.by} at {when}")
            conn.execute(
                "INSERT INTO door_alarm_acks (site, device, event_id, username, acked, note) VALUES (?, ?, ?, ?, ?, ?)",
                (alarm.site, alarm.device, alarm.id, actor.name, time.time(), note.strip()),
            )
            audit.record(
                conn,
                actor,
                "door_alarm.ack",
                alarm_id,
                site=alarm.site,
                device=alarm.device,
                door=alarm.door,
                building=alarm.building,
                alarm=alarm.alarm,
                note=note.strip(),
            )
        return alarms(conn, principal, alarm_id=alarm_id)[0]
