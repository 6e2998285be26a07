"""Card administration: buildings, gate doors, residents and their cards. The CLI (`diaolou-hub
cards ...`) and the dorm manager's pages and API call these same functions.

Every change is audited, and every change to what a gate would allow appends to `list_changes`
(one row per building it touches): the row's id is the new allow-list version, which the sync
(hub/access_sync.py) sends to the gates of that building at once. A dorm manager acts only on the
buildings of their scope; what lies outside it is answered as not found.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass

from common.residents_csv import (
    BUILDING_PATTERN,
    FORMAT_NAMES,
    NO_FACILITY,
    Format,
    ResidentsCsvError,
    decode_text,
    parse_card_number,
    parse_rows,
)
from hub.access_sync import latest_version, reported_version
from hub.models import Card, CardIssue, GateListState, ImportReport, Principal, Resident, is_site_name
from hub.services import audit
from hub.store import transaction

LIVE = ("active", "suspended")
# Which state changes a person may make by hand; lost comes only with a replacement.
MOVES: dict[str, tuple[str, ...]] = {
    "active": ("suspended", "returned", "revoked"),
    "suspended": ("active", "returned", "revoked"),
}


class CardError(ValueError):
    """A refused change; `status` is the HTTP status a route answers with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CardKey:
    format: Format
    bits: int
    facility: int  # NO_FACILITY for a typed number
    number: int
    raw: str


def card_key(number: str, card_format: str) -> CardKey:
    fmt = FORMAT_NAMES.get(card_format.strip().lower())
    if fmt is None:
        raise CardError(f"card_format {card_format[:40]!r} is not wiegand26, wiegand34, number or uid")
    try:
        bits, facility, num = parse_card_number(fmt, number.strip())
    except ValueError as exc:
        raise CardError(f"card_number: {exc}") from None
    return CardKey(fmt, bits, NO_FACILITY if facility is None else facility, num, number.strip())


def _may(principal: Principal | None, building: str) -> bool:
    """None is the CLI (an operator on the hub box): every building."""
    return principal is None or principal.role == "admin" or building in principal.buildings


def ensure_building(conn: sqlite3.Connection, name: str) -> None:
    if not re.fullmatch(BUILDING_PATTERN, name):
        raise CardError(f"{name[:70]!r} is not a building id (lower-case letters, digits, - and _)")
    conn.execute("INSERT OR IGNORE INTO buildings (name, created) VALUES (?, ?)", (name, time.time()))


def touch(conn: sqlite3.Connection, card_id: int, buildings: Iterable[str]) -> int:
    """Record that `card_id` changed for the gates of `buildings` and of the buildings its holder's
    groups grant; returns the new version."""
    version = 0
    now = time.time()
    granted = conn.execute(
        "SELECT gb.building FROM cards c JOIN resident_groups rg ON rg.resident_id = c.resident_id "
        "JOIN access_group_buildings gb ON gb.group_name = rg.group_name WHERE c.id = ?",
        (card_id,),
    ).fetchall()
    for building in sorted({*buildings, *(r[0] for r in granted)}):
        cur = conn.execute(
            "INSERT INTO list_changes (time, building, card_id) VALUES (?, ?, ?)", (now, building, card_id)
        )
        version = int(cur.lastrowid or 0)
    conn.execute("UPDATE cards SET version = ?, changed = ? WHERE id = ?", (version, now, card_id))
    return version


def set_door(
    conn: sqlite3.Connection,
    actor: audit.Actor,
    site: str,
    device: str,
    door: str,
    building: str,
    camera: str | None = None,
) -> None:
    """Bind a gate box's door to a building (admins): the box then receives that building's list.
    `camera`: the box's camera at the door, which the building's dorm managers may then watch."""
    named = [("site", site), ("device", device), ("door", door)] + ([("camera", camera)] if camera else [])
    for what, value in named:
        if not is_site_name(value):
            raise CardError(f"{value[:70]!r} is not a {what} id (lower-case letters, digits, - and _)")
    with transaction(conn):
        ensure_building(conn, building)
        conn.execute(
            "INSERT INTO gate_doors (site, device, door, building, camera) VALUES (?, ?, ?, ?, ?) ON CONFLICT "
            "(site, device, door) DO UPDATE SET building = excluded.building, camera = excluded.camera",
            (site, device, door, building, camera),
        )
        # A new version for the building, so the box's next snapshot is newer than what it holds.
        conn.execute("INSERT INTO list_changes (time, building, card_id) VALUES (?, ?, 0)", (time.time(), building))
        conn.execute(
            "INSERT INTO gate_lists (site, device, needs_snapshot) VALUES (?, ?, 1) ON CONFLICT (site, device) "
            "DO UPDATE SET needs_snapshot = 1",
            (site, device),
        )
        audit.record(conn, actor, "gate.door", f"{site}/{device}/{door}", building=building, camera=camera)


def _upsert_resident(conn: sqlite3.Connection, body: CardIssue, now: float) -> tuple[int, str | None]:
    """(resident id, the building they lived in before if they moved)."""
    old = conn.execute("SELECT id, building FROM residents WHERE employee_no = ?", (body.employee_no,)).fetchone()
    row = conn.execute(
        "INSERT INTO residents (employee_no, name, company, building, room, phone, kind, created, updated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (employee_no) DO UPDATE SET name = excluded.name, "
        "company = excluded.company, building = excluded.building, room = excluded.room, phone = excluded.phone, "
        "kind = excluded.kind, updated = excluded.updated RETURNING id",
        (body.employee_no, body.name, body.company, body.building, body.room, body.phone, body.kind, now, now),
    ).fetchone()
    moved = old["building"] if old is not None and old["building"] != body.building else None
    return int(row[0]), moved


def _put_card(
    conn: sqlite3.Connection, resident_id: int, key: CardKey, valid_from: float | None, body: CardIssue, now: float
) -> int:
    owner = conn.execute(
        "SELECT c.id, c.resident_id, r.employee_no FROM cards c JOIN residents r ON r.id = c.resident_id "
        "WHERE c.facility = ? AND c.number = ? AND c.bits = ? AND c.state IN ('active', 'suspended')",
        (key.facility, key.number, key.bits),
    ).fetchone()
    if owner is not None and owner["resident_id"] != resident_id:
        raise CardError(f"card {key.raw} already belongs to employee {owner['employee_no']}: return it first", 409)
    if owner is not None:
        conn.execute(
            "UPDATE cards SET valid_from = ?, valid_until = ?, max_uses = ? WHERE id = ?",
            (valid_from, body.valid_until, body.max_uses, owner["id"]),
        )
        return int(owner["id"])
    cur = conn.execute(
        "INSERT INTO cards (resident_id, format, bits, facility, number, raw, state, valid_from, valid_until, "
        "max_uses, issued, changed, version) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, 0)",
        (
            resident_id,
            key.format,
            key.bits,
            key.facility,
            key.number,
            key.raw,
            valid_from,
            body.valid_until,
            body.max_uses,
            now,
            now,
        ),
    )
    return int(cur.lastrowid or 0)


def _resident_changed(conn: sqlite3.Connection, resident_id: int, moved_from: str | None, building: str) -> None:
    """A resident's details travel with each of their live cards: every card is re-sent."""
    for (card_id,) in conn.execute(
        "SELECT id FROM cards WHERE resident_id = ? AND state IN ('active', 'suspended')", (resident_id,)
    ).fetchall():
        touch(conn, card_id, [building] + ([moved_from] if moved_from else []))


def issue(conn: sqlite3.Connection, actor: audit.Actor, principal: Principal | None, body: CardIssue) -> Card:
    """Add or update the resident and give them the card (or update the card they hold)."""
    if not _may(principal, body.building):
        raise CardError(f"building {body.building} is not yours to manage", 403)
    if body.kind == "visitor" and body.valid_until is None:
        raise CardError("a visitor pass needs valid_until")
    key = card_key(body.card_number, body.card_format)
    now = time.time()
    with transaction(conn):
        old = conn.execute("SELECT building FROM residents WHERE employee_no = ?", (body.employee_no,)).fetchone()
        if old is not None and not _may(principal, old["building"]):
            raise CardError(f"employee {body.employee_no} lives in a building that is not yours", 403)
        ensure_building(conn, body.building)
        resident_id, moved = _upsert_resident(conn, body, now)
        card_id = _put_card(conn, resident_id, key, None, body, now)
        _resident_changed(conn, resident_id, moved, body.building)
        audit.record(conn, actor, "card.issue", body.employee_no, card=key.raw, building=body.building, kind=body.kind)
    return get_card(conn, card_id)


def import_csv(
    conn: sqlite3.Connection, actor: audit.Actor, principal: Principal | None, data: bytes, source: str, timezone: str
) -> ImportReport:
    """All rows or none: ResidentsCsvError lists every bad row (its line, the column, what is wrong)."""
    rows, problems = parse_rows(decode_text(data, source), timezone)
    for row in rows:
        if not _may(principal, row.building):
            problems.append(f"line {row.line}: building: {row.building} is not yours to manage")
    if problems:
        raise ResidentsCsvError(source, problems)
    residents: set[str] = set()
    now = time.time()
    with transaction(conn):
        for row in rows:
            body = CardIssue(
                employee_no=row.employee_no,
                name=row.name,
                company=row.company,
                building=row.building,
                room=row.room,
                phone=row.phone,
                card_number=row.raw,
                card_format=row.format,
                valid_until=row.valid_until,
            )
            old = conn.execute("SELECT building FROM residents WHERE employee_no = ?", (row.employee_no,)).fetchone()
            if old is not None and not _may(principal, old["building"]):
                problems.append(f"line {row.line}: employee_no: {row.employee_no} lives in a building not yours")
                continue
            ensure_building(conn, row.building)
            resident_id, moved = _upsert_resident(conn, body, now)
            key = CardKey(
                row.format, row.bits, NO_FACILITY if row.facility is None else row.facility, row.number, row.raw
            )
            try:
                _put_card(conn, resident_id, key, row.valid_from, body, now)
            except CardError as exc:
                problems.append(f"line {row.line}: card_number: {exc}")
                continue
            _resident_changed(conn, resident_id, moved, row.building)
            residents.add(row.employee_no)
        if problems:  # raising rolls the whole file back
            raise ResidentsCsvError(source, problems)
        audit.record(conn, actor, "card.import", source[:200], residents=len(residents), cards=len(rows))
    return ImportReport(residents=len(residents), cards=len(rows))


def _card_row(conn: sqlite3.Connection, card_id: int) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT c.*, r.employee_no, r.building FROM cards c JOIN residents r ON r.id = c.resident_id WHERE c.id = ?",
        (card_id,),
    ).fetchone()
    return row


def _card(row: sqlite3.Row) -> Card:
    return Card(
        id=row["id"],
        format=row["format"],
        number=row["raw"],
        state=row["state"],
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        max_uses=row["max_uses"],
        issued=row["issued"],
        changed=row["changed"],
    )


def get_card(conn: sqlite3.Connection, card_id: int) -> Card:
    row = _card_row(conn, card_id)
    if row is None:
        raise CardError(f"no card {card_id}", 404)
    return _card(row)


def _visible_card(conn: sqlite3.Connection, principal: Principal | None, card_id: int) -> sqlite3.Row:
    row = _card_row(conn, card_id)
    if row is None or not _may(principal, row["building"]):
        raise CardError(f"no card {card_id}", 404)
    return row


def set_state(
    conn: sqlite3.Connection, actor: audit.Actor, principal: Principal | None, card_id: int, state: str
) -> Card:
    """Suspend, re-activate, take back (returned) or revoke a card; the gates hear of it at once."""
    with transaction(conn):
        row = _visible_card(conn, principal, card_id)
        if state not in MOVES.get(row["state"], ()):
            raise CardError(f"a card that is {row['state']} cannot become {state}", 409)
        conn.execute("UPDATE cards SET state = ? WHERE id = ?", (state, card_id))
        version = touch(conn, card_id, [row["building"]])
        audit.record(conn, actor, f"card.{state}", row["employee_no"], card=row["raw"], version=version)
    return get_card(conn, card_id)


def replace(
    conn: sqlite3.Connection, actor: audit.Actor, principal: Principal | None, card_id: int, number: str, fmt: str
) -> Card:
    """A lost card's replacement: the old card becomes lost (refused at every gate at once), the new
    one takes over its validity, in one transaction."""
    key = card_key(number, fmt)
    now = time.time()
    with transaction(conn):
        row = _visible_card(conn, principal, card_id)
        if row["state"] not in LIVE:
            raise CardError(f"card {row['raw']} is {row['state']}: issue a new card instead", 409)
        conn.execute("UPDATE cards SET state = 'lost' WHERE id = ?", (card_id,))
        touch(conn, card_id, [row["building"]])
        resident = conn.execute("SELECT * FROM residents WHERE id = ?", (row["resident_id"],)).fetchone()
        body = CardIssue(
            employee_no=resident["employee_no"],
            name=resident["name"],
            building=resident["building"],
            kind=resident["kind"],
            card_number=key.raw,
            card_format=key.format,
            valid_until=row["valid_until"],
            max_uses=row["max_uses"],
        )
        new_id = _put_card(conn, row["resident_id"], key, row["valid_from"], body, now)
        touch(conn, new_id, [row["building"]])
        audit.record(conn, actor, "card.replace", row["employee_no"], old=row["raw"], new=key.raw)
    return get_card(conn, new_id)


def revoke_number(conn: sqlite3.Connection, actor: audit.Actor, number: str) -> list[Card]:
    """`diaolou-hub cards revoke --card NUMBER`: every live card written so (a Wiegand number may
    exist in both lengths); CardError when none is live."""
    ids = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM cards WHERE raw = ? AND state IN ('active', 'suspended') ORDER BY id", (number.strip(),)
        ).fetchall()
    ]
    if not ids:
        raise CardError(f"no active or suspended card {number.strip()[:40]!r}", 404)
    return [set_state(conn, actor, None, card_id, "revoked") for card_id in ids]


def residents(
    conn: sqlite3.Connection, principal: Principal | None, building: str | None = None, query: str | None = None
) -> list[Resident]:
    """Residents (with their cards) of the caller's buildings, by building and name; at most 500."""
    sql = "SELECT * FROM residents WHERE 1 = 1"
    params: list[object] = []
    if principal is not None and principal.role != "admin":
        sql += f" AND building IN ({','.join('?' * len(principal.buildings))})"
        params += sorted(principal.buildings)
    if building:
        sql += " AND building = ?"
        params.append(building)
    if query:
        sql += " AND (employee_no LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\' OR room = ?)"
        like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [like, like, query]
    sql += " ORDER BY building, room, name LIMIT 500"
    out = []
    for r in conn.execute(sql, params).fetchall():
        cards = conn.execute("SELECT * FROM cards WHERE resident_id = ? ORDER BY id DESC", (r["id"],)).fetchall()
        out.append(
            Resident(
                employee_no=r["employee_no"],
                name=r["name"],
                company=r["company"],
                building=r["building"],
                room=r["room"],
                phone=r["phone"],
                kind=r["kind"],
                cards=[_card(c) for c in cards],
            )
        )
    return out


def buildings(conn: sqlite3.Connection, principal: Principal | None) -> list[str]:
    names = [r[0] for r in conn.execute("SELECT name FROM buildings ORDER BY name").fetchall()]
    return [n for n in names if _may(principal, n)]


def gate_lists(conn: sqlite3.Connection, principal: Principal | None) -> list[GateListState]:
    """Every gate box of the caller's buildings, with whether its list is stale: it reports an
    older version than the newest change of its buildings (or none at all), and if so how many
    changes it lacks and since when (the time of the oldest of them)."""
    out = []
    rows = conn.execute(
        "SELECT g.site, g.device, group_concat(DISTINCT g.building) AS buildings, l.sent_version, d.state, "
        "d.last_heartbeat FROM gate_doors g LEFT JOIN gate_lists l ON l.site = g.site AND l.device = g.device "
        "LEFT JOIN devices d ON d.site = g.site AND d.device = g.device GROUP BY g.site, g.device "
        "ORDER BY g.site, g.device"
    ).fetchall()
    for r in rows:
        names = sorted(r["buildings"].split(","))
        if not any(_may(principal, b) for b in names):
            continue
        latest = latest_version(conn, names)
        reported = reported_version(r["last_heartbeat"])
        lag = conn.execute(
            f"SELECT count(*), min(time) FROM list_changes WHERE building IN ({','.join('?' * len(names))}) "
            "AND version > ?",
            [*names, reported or 0],
        ).fetchone()
        out.append(
            GateListState(
                site=r["site"],
                device=r["device"],
                buildings=names,
                online=r["state"] == "online",
                latest_version=latest,
                sent_version=r["sent_version"],
                reported_version=reported,
                stale=reported is None or reported < latest,
                behind=lag[0],
                stale_since=lag[1],
            )
        )
    return out
