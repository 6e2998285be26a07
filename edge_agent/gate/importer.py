"""Fill the allow-list from a residents CSV (`diaolou-agent gate import`), all rows or none.

The file is parsed and checked by common.residents_csv (the hub reads the same file the same
way); one bad row and nothing is written, the list on the box is as it was. A good file is
written in one transaction, so a gate deciding meanwhile sees the old list or the new one, never half of each.

Rows are upserts: a holder by employee number, a card by (facility, number, bit length). The
hub-signed sync will replace this as the way lists reach a box.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from common.residents_csv import HEADER, NO_FACILITY, ImportResult, ResidentsCsvError, parse_rows, read_text
from edge_agent.gate.store import put_credential, put_holder

GateImportError = ResidentsCsvError  # the name the agent's CLI and tests know
__all__ = ["HEADER", "GateImportError", "ImportResult", "import_csv"]


def import_csv(db: sqlite3.Connection, path: Path, timezone: str) -> ImportResult:
    """Check every row of `path`, then write them all in one transaction; GateImportError otherwise."""
    rows, problems = parse_rows(read_text(path), timezone)
    for row in rows:  # a card already on the box for somebody else is a mistake, not a reissue
        owner = db.execute(
            "SELECT h.employee_no FROM credentials c JOIN holders h ON h.id = c.holder_id "
            "WHERE c.facility = ? AND c.number = ? AND c.bits = ?",
            (NO_FACILITY if row.facility is None else row.facility, row.number, row.bits),
        ).fetchone()
        if owner is not None and owner[0] != row.employee_no:
            problems.append(f"line {row.line}: card_number: {row.raw} already belongs to employee {owner[0]}")
    if problems:
        raise GateImportError(str(path), problems)
    holders: set[str] = set()
    db.execute("BEGIN IMMEDIATE")
    try:
        for row in rows:
            holder_id = put_holder(
                db,
                row.employee_no,
                row.name,
                row.building,
                company=row.company,
                room=row.room,
                phone=row.phone,
            )
            holders.add(row.employee_no)
            put_credential(
                db,
                holder_id,
                row.format,
                row.bits,
                row.facility,
                row.number,
                raw=row.raw,
                valid_from=row.valid_from,
                valid_until=row.valid_until,
            )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return ImportResult(holders=len(holders), credentials=len(rows))
