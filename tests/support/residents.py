"""Many residents with a Wiegand 26 card each, written straight into hub.db in one transaction
(row by row through the cards service in autocommit took 17 s for 10,000 on a loaded machine).
Shared by the gate sync test and bench/gate_sync.py."""

from __future__ import annotations

import sqlite3


def fill_residents(conn: sqlite3.Connection, count: int, building: str = "b07") -> None:
    """`count` residents of `building`, card i being facility 1 + i // 65536, number i % 65536."""
    rows = [(f"E{i:05d}", f"住户{i}", building, str(100 + i % 900), 1.0, 1.0) for i in range(count)]
    conn.execute("BEGIN")  # one transaction: one sync to disk
    conn.executemany(
        "INSERT INTO residents (employee_no, name, building, room, created, updated) VALUES (?, ?, ?, ?, ?, ?)", rows
    )
    conn.execute(
        "INSERT INTO cards (resident_id, format, bits, facility, number, raw, state, issued, changed, version) "
        "SELECT id, 'wiegand26', 26, 1 + id / 65536, id % 65536, (1 + id / 65536) || '/' || (id % 65536), "
        "'active', 1, 1, 0 FROM residents"
    )
    conn.execute("INSERT INTO list_changes (time, building, card_id) SELECT 1, ?, id FROM cards", (building,))
    conn.execute("COMMIT")
