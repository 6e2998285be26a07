"""The gate box's allow-list: one SQLite file, `<storage.root>/gate.db`, the only thing a decision reads.

Decisions never wait for the network, so everything they need is here: credentials (looked up
through one unique index on facility, number and bit length), their holders, groups granting
buildings on weekly schedules, the holiday calendar, the doors, and the little state a decision
changes (a visitor pass's uses, who is inside an anti-passback area). The file is written by the
importer and by the hub-signed sync (sync.py); WAL mode lets the gate keep deciding while a
list is written in one transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from common.residents_csv import NO_FACILITY

GATE_DB = "gate.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS buildings (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS doors (
    name TEXT PRIMARY KEY,
    building TEXT NOT NULL,
    area TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    anti_passback INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS holders (
    id INTEGER PRIMARY KEY,
    employee_no TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    company TEXT NOT NULL DEFAULT '',
    building TEXT,
    room TEXT NOT NULL DEFAULT '',
    phone TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'resident' CHECK (kind IN ('resident', 'visitor', 'staff')),
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'suspended', 'revoked')),
    valid_from REAL,
    valid_until REAL
);
CREATE TABLE IF NOT EXISTS credentials (
    id INTEGER PRIMARY KEY,
    holder_id INTEGER NOT NULL REFERENCES holders(id) ON DELETE CASCADE,
    format TEXT NOT NULL CHECK (format IN ('wiegand26', 'wiegand34', 'number')),
    bits INTEGER NOT NULL,
    facility INTEGER NOT NULL,
    number INTEGER NOT NULL,
    raw TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'suspended', 'lost', 'revoked')),
    valid_from REAL,
    valid_until REAL,
    max_uses INTEGER,
    uses INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS credentials_card ON credentials (facility, number, bits);
CREATE INDEX IF NOT EXISTS credentials_holder ON credentials (holder_id);
CREATE TABLE IF NOT EXISTS schedules (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    closed_on_holidays INTEGER NOT NULL DEFAULT 1
);
-- weekday 0 = Monday; minutes since local midnight, [start, end).
CREATE TABLE IF NOT EXISTS schedule_segments (
    schedule_id INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    weekday INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    start_minute INTEGER NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute INTEGER NOT NULL CHECK (end_minute BETWEEN 1 AND 1440 AND end_minute > start_minute)
);
CREATE INDEX IF NOT EXISTS schedule_segments_day ON schedule_segments (schedule_id, weekday);
CREATE TABLE IF NOT EXISTS holidays (day TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    schedule_id INTEGER REFERENCES schedules(id)
);
CREATE TABLE IF NOT EXISTS group_buildings (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    building TEXT NOT NULL,
    PRIMARY KEY (group_id, building)
);
CREATE TABLE IF NOT EXISTS holder_groups (
    holder_id INTEGER NOT NULL REFERENCES holders(id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    PRIMARY KEY (holder_id, group_id)
);
-- Anti-passback: whether a holder is inside an area, and since when.
CREATE TABLE IF NOT EXISTS presence (
    holder_id INTEGER NOT NULL,
    area TEXT NOT NULL,
    inside INTEGER NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (holder_id, area)
);
-- The version of the hub-signed list this file holds (edge_agent/gate/sync.py); none: 0.
CREATE TABLE IF NOT EXISTS list_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    applied REAL NOT NULL
);
"""


@dataclass(frozen=True)
class DoorRow:
    name: str
    building: str
    area: str
    direction: str
    anti_passback: bool


def gate_db_path(storage_root: Path) -> Path:
    return storage_root / GATE_DB


def open_db(path: Path, create: bool = True) -> sqlite3.Connection:
    """The allow-list, schema applied. `create=False`: FileNotFoundError when there is none yet."""
    if not create and not path.exists():
        raise FileNotFoundError(f"no allow-list at {path}: fill it with `diaolou-agent gate import`")
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.executescript(SCHEMA)
    return db


def list_version(db: sqlite3.Connection) -> int:
    """The hub-signed list version held (0: none, e.g. a list from `gate import` only)."""
    row = db.execute("SELECT version FROM list_state WHERE id = 1").fetchone()
    return int(row[0]) if row else 0


def put_door(db: sqlite3.Connection, door: DoorRow) -> None:
    db.execute("INSERT OR IGNORE INTO buildings (name) VALUES (?)", (door.building,))
    db.execute(
        "INSERT INTO doors (name, building, area, direction, anti_passback) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET building = excluded.building, area = excluded.area, "
        "direction = excluded.direction, anti_passback = excluded.anti_passback",
        (door.name, door.building, door.area, door.direction, int(door.anti_passback)),
    )


def put_holder(
    db: sqlite3.Connection,
    employee_no: str,
    name: str,
    building: str | None,
    *,
    company: str = "",
    room: str = "",
    phone: str = "",
    kind: str = "resident",
    state: str = "active",
    valid_from: float | None = None,
    valid_until: float | None = None,
) -> int:
    """Insert or update a holder by employee number; returns its id."""
    if building is not None:
        db.execute("INSERT OR IGNORE INTO buildings (name) VALUES (?)", (building,))
    row = db.execute(
        "INSERT INTO holders (employee_no, name, company, building, room, phone, kind, state, valid_from, "
        "valid_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (employee_no) DO UPDATE SET "
        "name = excluded.name, company = excluded.company, building = excluded.building, room = excluded.room, "
        "phone = excluded.phone, kind = excluded.kind, state = excluded.state, valid_from = excluded.valid_from, "
        "valid_until = excluded.valid_until RETURNING id",
        (employee_no, name, company, building, room, phone, kind, state, valid_from, valid_until),
    ).fetchone()
    return int(row[0])


def put_credential(
    db: sqlite3.Connection,
    holder_id: int,
    format: str,
    bits: int,
    facility: int | None,
    number: int,
    *,
    raw: str = "",
    state: str = "active",
    valid_from: float | None = None,
    valid_until: float | None = None,
    max_uses: int | None = None,
) -> int:
    """Insert or update a card by (facility, number, bits); returns its id."""
    row = db.execute(
        "INSERT INTO credentials (holder_id, format, bits, facility, number, raw, state, valid_from, valid_until, "
        "max_uses) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (facility, number, bits) DO UPDATE SET "
        "holder_id = excluded.holder_id, format = excluded.format, raw = excluded.raw, state = excluded.state, "
        "valid_from = excluded.valid_from, valid_until = excluded.valid_until, max_uses = excluded.max_uses "
        "RETURNING id",
        (
            holder_id,
            format,
            bits,
            NO_FACILITY if facility is None else facility,
            number,
            raw,
            state,
            valid_from,
            valid_until,
            max_uses,
        ),
    ).fetchone()
    return int(row[0])


def put_schedule(
    db: sqlite3.Connection, name: str, segments: list[tuple[int, int, int]], closed_on_holidays: bool = True
) -> int:
    """A weekly schedule: segments of (weekday 0=Monday, start minute, end minute); replaces its segments."""
    row = db.execute(
        "INSERT INTO schedules (name, closed_on_holidays) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
        "closed_on_holidays = excluded.closed_on_holidays RETURNING id",
        (name, int(closed_on_holidays)),
    ).fetchone()
    schedule_id = int(row[0])
    db.execute("DELETE FROM schedule_segments WHERE schedule_id = ?", (schedule_id,))
    db.executemany(
        "INSERT INTO schedule_segments (schedule_id, weekday, start_minute, end_minute) VALUES (?, ?, ?, ?)",
        [(schedule_id, day, start, end) for day, start, end in segments],
    )
    return schedule_id


def put_group(db: sqlite3.Connection, name: str, buildings: list[str], schedule: str | None = None) -> int:
    """A group granting `buildings` (on `schedule`, or at any time); replaces its buildings."""
    schedule_id = None
    if schedule is not None:
        found = db.execute("SELECT id FROM schedules WHERE name = ?", (schedule,)).fetchone()
        if found is None:
            raise ValueError(f"no schedule {schedule!r}")
        schedule_id = int(found[0])
    row = db.execute(
        "INSERT INTO groups (name, schedule_id) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
        "schedule_id = excluded.schedule_id RETURNING id",
        (name, schedule_id),
    ).fetchone()
    group_id = int(row[0])
    db.execute("DELETE FROM group_buildings WHERE group_id = ?", (group_id,))
    db.executemany("INSERT INTO group_buildings (group_id, building) VALUES (?, ?)", [(group_id, b) for b in buildings])
    return group_id


def add_to_group(db: sqlite3.Connection, holder_id: int, group: str) -> None:
    found = db.execute("SELECT id FROM groups WHERE name = ?", (group,)).fetchone()
    if found is None:
        raise ValueError(f"no group {group!r}")
    db.execute("INSERT OR IGNORE INTO holder_groups (holder_id, group_id) VALUES (?, ?)", (holder_id, found[0]))


def put_holiday(db: sqlite3.Connection, day: str, name: str = "") -> None:
    """A holiday, `day` as YYYY-MM-DD in the site's time zone."""
    db.execute(
        "INSERT INTO holidays (day, name) VALUES (?, ?) ON CONFLICT (day) DO UPDATE SET name = excluded.name",
        (day, name),
    )


def set_state(
    db: sqlite3.Connection, *, card: tuple[int, int, int] | None = None, employee_no: str | None = None, state: str
) -> int:
    """Mark a card (facility, number, bits) lost/revoked/active, or a holder suspended/revoked/active.
    Returns the number of rows changed."""
    if card is not None:
        return db.execute(
            "UPDATE credentials SET state = ? WHERE facility = ? AND number = ? AND bits = ?", (state, *card)
        ).rowcount
    return db.execute("UPDATE holders SET state = ? WHERE employee_no = ?", (state, employee_no)).rowcount
