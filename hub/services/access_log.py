"""The access log: gate decisions and door alarms (events of kind access and door_alarm, stored
by ingest like every event), for the buildings the caller may see, newest first.

At a door with a camera each record carries the camera's picture of its moment (the snapshot the
gate sent after the event, served by building like the record itself: a dorm manager sees who
used a card at their buildings' doors) and, for callers who may watch that camera (the one rule
for video, `Principal.may_see_camera`), a link to play back from a few seconds before."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path

from hub.models import AccessRecord, Principal, camera_id
from hub.services.audit import csv_cell

PAGE_MAX = 500
EXPORT_MAX = 100_000  # a month of a busy village's swipes
# The playback link opens this long before the swipe: the person walking up to the reader (an
# alert's link opens 10 s before: a person event starts when they are already in view).
PLAYBACK_LEAD_S = 5
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
        "SELECT e.id, e.site, e.device, e.camera, e.kind, e.time, e.detail, s.path AS snapshot FROM events e "
        "LEFT JOIN snapshots s ON s.event_id = e.id AND s.site = e.site AND s.device = e.device "
        "WHERE e.kind IN ('access', 'door_alarm') AND e.phase = 'instant'"
    )
    params: list[object] = []
    if principal is not None and principal.role != "admin":
        scope = sorted(principal.buildings)
        sql += f" AND json_extract(e.detail, '$.building') IN ({','.join('?' * len(scope))})"
        params += scope
    if building:
        sql += " AND json_extract(e.detail, '$.building') = ?"
        params.append(building)
    if employee_no:
        sql += " AND json_extract(e.detail, '$.employee_no') = ?"
        params.append(employee_no)
    if since is not None:
        sql += " AND e.time >= ?"
        params.append(since)
    if until is not None:
        sql += " AND e.time < ?"
        params.append(until)
    sql += " ORDER BY e.time DESC LIMIT ?"
    params.append(min(limit, limit_max))
    out = []
    for r in conn.execute(sql, params).fetchall():
        d = json.loads(r["detail"] or "{}")

        def text(key: str, d: dict[str, object] = d) -> str | None:
            value = d.get(key)
            return None if value is None else str(value)

        granted = d.get("granted")
        camera = camera_id(r["site"], r["device"], r["camera"]) if r["camera"] else None
        watch = camera is not None and (
            principal is None or principal.may_see_camera(r["site"], r["device"], r["camera"])
        )
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
                camera=camera,
                snapshot=snapshot_url(r["id"]) if r["snapshot"] else None,
                playback=f"/cameras/{camera}/playback?t={int(r['time'] - PLAYBACK_LEAD_S)}" if watch else None,
            )
        )
    return out


def snapshot_url(event_id: str) -> str:
    return f"/api/v1/cards/access-log/{event_id}/snapshot"


def snapshot_file(conn: sqlite3.Connection, data_dir: Path, principal: Principal, event_id: str) -> Path | None:
    """The picture of access record `event_id`, if the caller may see the record (admins: all;
    dorm managers: their buildings); None otherwise, exactly as for a record that does not exist."""
    row = conn.execute(
        "SELECT json_extract(e.detail, '$.building') AS building, s.path FROM events e "
        "JOIN snapshots s ON s.event_id = e.id AND s.site = e.site AND s.device = e.device "
        "WHERE e.id = ? AND e.kind IN ('access', 'door_alarm') AND e.phase = 'instant' LIMIT 1",
        (event_id,),
    ).fetchone()
    if row is None or (principal.role != "admin" and row["building"] not in principal.buildings):
        return None
    path = (data_dir / row["path"]).resolve()
    return path if path.is_relative_to(data_dir.resolve()) and path.is_file() else None


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
