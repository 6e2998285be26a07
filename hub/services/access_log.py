"""The access log: gate decisions and door alarms (events of kind access and door_alarm, stored
by ingest like every event), for the buildings the caller may see, newest first."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time

from hub.models import AccessRecord, Principal
from hub.services.audit import csv_cell

PAGE_MAX = 500
EXPORT_MAX = 100_000  # a month of a busy village's swipes
COLUMNS = (
    "time_utc",
    "site",
    "device",
    "door",
    "building",
    "kind",
    "granted",
    "reason",
    "alarm",
    "card",
    "employee_no",
    "name",
    "why",
)


def recent(
    conn: sqlite3.Connection,
    principal: Principal | None,
    building: str | None = None,
    limit: int = 100,
    employee_no: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit_max: int = PAGE_MAX,
) -> list[AccessRecord]:
    sql = (
        "SELECT id, site, device, kind, time, detail FROM events WHERE kind IN ('access', 'door_alarm') "
        "AND phase = 'instant'"
    )
    params: list[object] = []
    if principal is not None and principal.role != "admin":
        scope = sorted(principal.buildings)
        sql += f" AND json_extract(detail, '$.building') IN ({','.join('?' * len(scope))})"
        params += scope
    if building:
        sql += " AND json_extract(detail, '$.building') = ?"
        params.append(building)
    if employee_no:
        sql += " AND json_extract(detail, '$.employee_no') = ?"
        params.append(employee_no)
    if since is not None:
        sql += " AND time >= ?"
        params.append(since)
    if until is not None:
        sql += " AND time < ?"
        params.append(until)
    sql += " ORDER BY time DESC LIMIT ?"
    params.append(min(limit, limit_max))
    out = []
    for r in conn.execute(sql, params).fetchall():
        d = json.loads(r["detail"] or "{}")

        def text(key: str, d: dict[str, object] = d) -> str | None:
            value = d.get(key)
            return None if value is None else str(value)

        granted = d.get("granted")
        out.append(
            AccessRecord(
                id=r["id"],
                time=r["time"],
                site=r["site"],
                device=r["device"],
                door=text("door"),
                building=text("building"),
                kind=r["kind"],
                granted=granted if isinstance(granted, bool) else None,
                reason=text("reason"),
                alarm=text("alarm"),
                card=text("card"),
                employee_no=text("employee_no"),
                name=text("name"),
                why=text("why"),
            )
        )
    return out


def export_csv(records: list[AccessRecord]) -> str:
    """The records as CSV (times in UTC), cells a spreadsheet would run as formulas quoted."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for r in records:
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.time))
        values = (r.site, r.device, r.door, r.building, r.kind, r.granted, r.reason, r.alarm, r.card)
        writer.writerow([iso, *(csv_cell(v) for v in (*values, r.employee_no, r.name, r.why))])
    return out.getvalue()
