"""The access log: gate decisions and door alarms (events of kind access and door_alarm, stored
by ingest like every event), for the buildings the caller may see, newest first."""

from __future__ import annotations

import json
import sqlite3

from hub.models import AccessRecord, Principal

PAGE_MAX = 500


def recent(
    conn: sqlite3.Connection, principal: Principal | None, building: str | None = None, limit: int = 100
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
    sql += " ORDER BY time DESC LIMIT ?"
    params.append(min(limit, PAGE_MAX))
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
