"""Groups and weekly schedules at the hub (admins): a group grants its members buildings other
than their own, at any time or on a schedule ("mon-fri 07:00-22:00"). The gate engine decides on
them offline; they travel whole in every list (hub/access_sync.py), and a member's cards travel
to the gates of every building the member's groups grant.

Every change appends list versions for the buildings it touches, so the gates hear of it at once.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterable
from datetime import date

from hub.models import is_site_name
from hub.services import audit
from hub.services.cards import CardError, ensure_building, touch
from hub.store import transaction

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SEGMENT = re.compile(
    r"^(mon|tue|wed|thu|fri|sat|sun)(?:-(mon|tue|wed|thu|fri|sat|sun))?\s+(\d\d):(\d\d)-(\d\d):(\d\d)$"
)
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def parse_segment(text: str) -> list[tuple[int, int, int]]:
    """`mon-fri 07:00-22:00` (or one day, `sat 09:00-12:00`) as (weekday, start, end minute) rows;
    `24:00` ends a day."""
    match = _SEGMENT.match(text.strip().lower())
    if match is None:
        raise CardError(f"{text[:60]!r}: write a segment as DAY[-DAY] HH:MM-HH:MM, e.g. mon-fri 07:00-22:00")
    first, last, h1, m1, h2, m2 = match.groups()
    start, end = int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)
    if int(m1) > 59 or int(m2) > 59 or start >= 1440 or end > 1440 or end <= start:
        raise CardError(f"{text[:60]!r}: the end must come after the start, within one day (00:00-24:00)")
    a, b = DAYS.index(first), DAYS.index(last or first)
    if b < a:
        raise CardError(f"{text[:60]!r}: the days run backwards")
    return [(day, start, end) for day in range(a, b + 1)]


def _check(name: str, what: str) -> None:
    if not is_site_name(name):
        raise CardError(f"{name[:60]!r} is not a {what} id (lower-case letters, digits, - and _)")


def _bump(conn: sqlite3.Connection, buildings: Iterable[str]) -> None:
    """A new list version for these buildings: the groups and schedules travel with it."""
    now = time.time()
    for building in sorted(set(buildings)):
        conn.execute("INSERT INTO list_changes (time, building, card_id) VALUES (?, ?, 0)", (now, building))


def _group_buildings(conn: sqlite3.Connection, group: str) -> list[str]:
    rows = conn.execute("SELECT building FROM access_group_buildings WHERE group_name = ?", (group,))
    return [r[0] for r in rows.fetchall()]


def set_schedule(
    conn: sqlite3.Connection, actor: audit.Actor, name: str, segments: list[str], closed_on_holidays: bool = True
) -> None:
    _check(name, "schedule")
    rows = sorted({row for text in segments for row in parse_segment(text)})
    if not rows:
        raise CardError("a schedule needs at least one --segment")
    with transaction(conn):
        conn.execute(
            "INSERT INTO access_schedules (name, segments, closed_on_holidays) VALUES (?, ?, ?) ON CONFLICT (name) "
            "DO UPDATE SET segments = excluded.segments, closed_on_holidays = excluded.closed_on_holidays",
            (name, json.dumps(rows), int(closed_on_holidays)),
        )
        used = conn.execute(
            "SELECT gb.building FROM access_groups g JOIN access_group_buildings gb ON gb.group_name = g.name "
            "WHERE g.schedule = ?",
            (name,),
        ).fetchall()
        _bump(conn, [r[0] for r in used])
        audit.record(conn, actor, "access.schedule", name, segments=segments, closed_on_holidays=closed_on_holidays)


def set_group(
    conn: sqlite3.Connection, actor: audit.Actor, name: str, buildings: list[str], schedule: str | None
) -> None:
    _check(name, "group")
    if not buildings:
        raise CardError("a group needs at least one --building")
    with transaction(conn):
        if (
            schedule is not None
            and conn.execute("SELECT 1 FROM access_schedules WHERE name = ?", (schedule,)).fetchone() is None
        ):
            raise CardError(f"no schedule {schedule!r}: make it first (diaolou-hub cards schedule)", 404)
        before = _group_buildings(conn, name)
        for building in buildings:
            ensure_building(conn, building)
        conn.execute(
            "INSERT INTO access_groups (name, schedule) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
            "schedule = excluded.schedule",
            (name, schedule),
        )
        conn.execute("DELETE FROM access_group_buildings WHERE group_name = ?", (name,))
        conn.executemany(
            "INSERT INTO access_group_buildings (group_name, building) VALUES (?, ?)", [(name, b) for b in buildings]
        )
        changed = {*before, *buildings}
        _bump(conn, changed)
        for (card_id,) in conn.execute(
            "SELECT c.id FROM cards c JOIN resident_groups rg ON rg.resident_id = c.resident_id "
            "WHERE rg.group_name = ? AND c.state IN ('active', 'suspended')",
            (name,),
        ).fetchall():
            touch(conn, card_id, changed)
        audit.record(conn, actor, "access.group", name, buildings=buildings, schedule=schedule)


def set_member(conn: sqlite3.Connection, actor: audit.Actor, employee_no: str, group: str, member: bool) -> None:
    """Add a resident to a group (or take them out): their cards go to (or leave) its gates."""
    with transaction(conn):
        resident = conn.execute("SELECT id, building FROM residents WHERE employee_no = ?", (employee_no,)).fetchone()
        if resident is None:
            raise CardError(f"no resident {employee_no[:60]!r}", 404)
        if conn.execute("SELECT 1 FROM access_groups WHERE name = ?", (group,)).fetchone() is None:
            raise CardError(f"no group {group[:60]!r}", 404)
        granted = _group_buildings(conn, group)
        cards = conn.execute(
            "SELECT id FROM cards WHERE resident_id = ? AND state IN ('active', 'suspended')", (resident["id"],)
        ).fetchall()
        if not member:  # touched first, while the membership still names the group's buildings
            for (card_id,) in cards:
                touch(conn, card_id, [resident["building"], *granted])
            conn.execute(
                "DELETE FROM resident_groups WHERE resident_id = ? AND group_name = ?", (resident["id"], group)
            )
        else:
            conn.execute(
                "INSERT OR IGNORE INTO resident_groups (resident_id, group_name) VALUES (?, ?)", (resident["id"], group)
            )
            for (card_id,) in cards:
                touch(conn, card_id, [resident["building"], *granted])
        audit.record(conn, actor, "access.member" if member else "access.nonmember", employee_no, group=group)


def set_holiday(conn: sqlite3.Connection, actor: audit.Actor, day: str, name: str, holiday: bool) -> None:
    """Add (or remove) a holiday: every gate box gets the calendar at once."""
    try:
        date.fromisoformat(day)
    except ValueError:
        raise CardError(f"{day[:40]!r} is not a day (YYYY-MM-DD)") from None
    if len(day) != 10:
        raise CardError(f"{day[:40]!r} is not a day (YYYY-MM-DD)")
    with transaction(conn):
        if holiday:
            conn.execute(
                "INSERT INTO access_holidays (day, name) VALUES (?, ?) ON CONFLICT (day) DO UPDATE SET "
                "name = excluded.name",
                (day, name[:100]),
            )
        elif conn.execute("DELETE FROM access_holidays WHERE day = ?", (day,)).rowcount == 0:
            raise CardError(f"{day} is not a holiday", 404)
        _bump(conn, [r[0] for r in conn.execute("SELECT DISTINCT building FROM gate_doors").fetchall()])
        audit.record(conn, actor, "access.holiday" if holiday else "access.workday", day, name=name[:100])
