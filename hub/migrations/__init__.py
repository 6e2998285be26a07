"""Numbered schema migrations for hub.db.

`NNNN_what.sql` files beside this module, applied in order; `PRAGMA user_version` holds the number
of the last one applied, so an existing hub.db is upgraded in place when a newer hub opens it,
each migration in its own transaction (a crash mid-upgrade leaves the previous version intact).
A database newer than this hub is refused rather than half-understood.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str


class SchemaTooNew(RuntimeError):
    pass


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files(__name__).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.number)
    if [m.number for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"hub migrations are not numbered 1..N: {[m.number for m in found]}")
    return found


def latest() -> int:
    return len(migrations())


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: str) -> list[Migration]:
    """Apply what `conn` lacks; returns the migrations applied. `path` only names the file in errors."""
    todo = migrations()
    current = schema_version(conn)
    if current > len(todo):
        raise SchemaTooNew(
            f"{path} has schema version {current}, newer than this hub knows ({len(todo)}): upgrade diaolou-hub"
        )
    applied = []
    for migration in todo[current:]:
        # executescript commits any open transaction first; BEGIN inside the script makes the
        # migration and its version number one transaction.
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{migration.sql}\nPRAGMA user_version = {migration.number};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        applied.append(migration)
    return applied
