"""Connections to hub.db for the people side (web requests, CLI commands).

Ingest keeps its own long-lived connection (hub.db.HubDB). Web requests open one per request
from a thread pool: SQLite connections are cheap (tens of microseconds) and WAL lets them read
while ingest writes. The schema is brought up to date once, by whoever opens hub.db first
(`HubDB`, or `open_store`), never per request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hub.migrations import migrate

BUSY_TIMEOUT_SECONDS = 5.0


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def open_store(path: Path) -> None:
    """Create or upgrade hub.db (WAL, every migration)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn, str(path))
    finally:
        conn.close()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (rollback on error). Immediate: the write lock is taken at the
    start, so two writers queue on the busy timeout instead of one failing mid-way."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
