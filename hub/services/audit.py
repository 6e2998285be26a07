"""The audit log: who did what, when, from where. Append-only and hash-chained.

Each row's `hash` is the SHA-256 of the previous row's hash and this row's content, so editing
or removing any row breaks the chain from there on; `verify` walks it and names the first row
that does not fit. Appends take the database's write lock (BEGIN IMMEDIATE), so two requests
never chain onto the same predecessor.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import time
from dataclasses import dataclass

from hub.models import AuditEntry, AuditPage, Principal

GENESIS = "0" * 64
PAGE_MAX = 200


@dataclass(frozen=True)
class Actor:
    """Who an audit row is about: a signed-in principal, or someone who only gave a name (a failed
    login), or the CLI."""

    name: str
    role: str | None
    address: str | None

    @classmethod
    def of(cls, principal: Principal, address: str | None) -> Actor:
        return cls(principal.username, principal.role, address)


CLI = Actor("cli", "admin", None)


def _row_hash(prev: str, entry_id: int, t: float, actor: Actor, action: str, target: str | None, detail: str) -> str:
    content = json.dumps(
        [entry_id, repr(t), actor.name, actor.role, action, target, actor.address, detail],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{prev}\n{content}".encode("utf-8", "backslashreplace")).hexdigest()


def record(conn: sqlite3.Connection, actor: Actor, action: str, target: str | None = None, **detail: object) -> int:
    """Append one row; returns its id. Call inside or outside a transaction of `conn`."""
    text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        last = conn.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        entry_id, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        t = time.time()
        digest = _row_hash(prev, entry_id, t, actor, action, target, text)
        conn.execute(
            "INSERT INTO audit (id, time, actor, role, action, target, address, detail, prev, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (entry_id, t, actor.name, actor.role, action, target, actor.address, text, prev, digest),
        )
    except BaseException:
        if own:
            conn.execute("ROLLBACK")
        raise
    if own:
        conn.execute("COMMIT")
    return entry_id


@dataclass(frozen=True)
class Verification:
    rows: int
    first_bad: int | None  # the id of the first row that was altered, or where rows were removed
    problem: str | None


def verify(conn: sqlite3.Connection) -> Verification:
    prev, expected_id, rows = GENESIS, 1, 0
    for row in conn.execute(
        "SELECT id, time, actor, role, action, target, address, detail, prev, hash FROM audit ORDER BY id"
    ):
        rows += 1
        entry_id = row[0]
        if entry_id != expected_id:
            return Verification(rows, expected_id, f"rows {expected_id} to {entry_id - 1} were removed")
        if row[8] != prev:
            return Verification(rows, entry_id, f"row {entry_id} does not follow row {entry_id - 1}")
        actor = Actor(row[2], row[3], row[6])
        if _row_hash(prev, entry_id, row[1], actor, row[4], row[5], row[7]) != row[9]:
            return Verification(rows, entry_id, f"row {entry_id} was altered")
        prev, expected_id = row[9], entry_id + 1
    return Verification(rows, None, None)


def search(
    conn: sqlite3.Connection,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: float | None = None,
    until: float | None = None,
    before: int | None = None,
    limit: int = 50,
) -> AuditPage:
    where, params = _filters(actor, action, target, since, until)
    if before is not None:
        where.append("id < ?")
        params.append(before)
    limit = max(1, min(limit, PAGE_MAX))
    sql = "SELECT id, time, actor, role, action, target, address, detail FROM audit"
    sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
    rows = conn.execute(sql, [*params, limit + 1]).fetchall()
    items = [_entry(r) for r in rows[:limit]]
    return AuditPage(items=items, next=items[-1].id if len(rows) > limit else None)


def export_csv(
    conn: sqlite3.Connection,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> str:
    where, params = _filters(actor, action, target, since, until)
    sql = "SELECT id, time, actor, role, action, target, address, detail, hash FROM audit"
    sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "time_utc", "actor", "role", "action", "target", "address", "detail", "hash"])
    for r in conn.execute(sql, params):
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r[1]))
        # A cell that starts with = + - @ is a formula to a spreadsheet: quote it as text.
        cells = [r[0], iso, *(csv_cell(v) for v in r[2:])]
        writer.writerow(cells)
    return out.getvalue()


def csv_cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _filters(
    actor: str | None, action: str | None, target: str | None, since: float | None, until: float | None
) -> tuple[list[str], list[object]]:
    where: list[str] = []
    params: list[object] = []
    for column, value in (("actor", actor), ("action", action), ("target", target)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("time >= ?")
        params.append(since)
    if until is not None:
        where.append("time < ?")
        params.append(until)
    return where, params


def _entry(r: sqlite3.Row) -> AuditEntry:
    return AuditEntry(id=r[0], time=r[1], actor=r[2], role=r[3], action=r[4], target=r[5], address=r[6], detail=r[7])
