"""Cameras, alerts and devices as people see them, filtered by who is asking.

Visibility is `Principal.may_see_camera`, applied in SQL for lists (so a page of a shop owner's
alerts is one indexed query, not a filter over everyone's) and per object for single ids. What
a caller may not see is reported exactly like what does not exist: None, which routes turn into 404.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from contract import CameraHealth, Heartbeat
from hub.models import Alert, AlertPage, AlertRef, Camera, Device, Principal, camera_id, split_camera_id

PAGE_MAX = 100
# The feed lists the first message of each event (new, or instant for one-shot events); test
# alarms prove the path and alert no one, so they stay out of it.
# Card swipes (the access log's) and a door's open/closed changes (the door board's) are not
# alerts; door alarms are both.
_FEED = "phase IN ('new', 'instant') AND test = 0 AND kind NOT IN ('access', 'door')"
_COLUMNS = 'SELECT rowid AS rowid, id, site, device, camera, kind, time, "end", test, detail'


def _visible_sql(principal: Principal) -> tuple[str, list[Any]]:
    """A WHERE clause over events (site, device, camera) for what `principal` may see."""
    if principal.role == "admin":
        return "1", []
    if principal.role == "police" and principal.sites:
        return f"site IN ({','.join('?' * len(principal.sites))})", sorted(principal.sites)
    if principal.role == "shop_owner" and principal.cameras:
        parts: list[str] = []
        params: list[Any] = []
        for cid in sorted(principal.cameras):
            split = split_camera_id(cid)
            if split is not None:
                parts.append("(site = ? AND device = ? AND camera = ?)")
                params.extend(split)
        if parts:
            return "(" + " OR ".join(parts) + ")", params
    return "0", []


def snapshot_url(event_id: str) -> str:
    return f"/api/v1/alerts/{event_id}/snapshot"


def list_cameras(conn: sqlite3.Connection, principal: Principal) -> list[Camera]:
    cameras = []
    for row in conn.execute("SELECT site, device, state, cameras, last_heartbeat FROM devices ORDER BY site, device"):
        names = json.loads(row["cameras"]) if row["cameras"] else []
        health = _camera_health(row["last_heartbeat"])
        for name in names:
            if principal.may_see_camera(row["site"], row["device"], name):
                cameras.append(_camera(conn, row["site"], row["device"], name, row["state"], health.get(name)))
    return cameras


def get_camera(conn: sqlite3.Connection, principal: Principal, cid: str) -> Camera | None:
    split = split_camera_id(cid)
    if split is None or not principal.may_see_camera(*split):
        return None
    site, device, name = split
    row = conn.execute(
        "SELECT state, cameras, last_heartbeat FROM devices WHERE site = ? AND device = ?", (site, device)
    ).fetchone()
    if row is None or name not in (json.loads(row["cameras"]) if row["cameras"] else []):
        return None
    return _camera(conn, site, device, name, row["state"], _camera_health(row["last_heartbeat"]).get(name))


def reported_health(conn: sqlite3.Connection, site: str, device: str, name: str) -> CameraHealth | None:
    """The camera's part of its box's last heartbeat, or None (no heartbeat yet, or one from a
    version that did not say it)."""
    row = conn.execute("SELECT last_heartbeat FROM devices WHERE site = ? AND device = ?", (site, device)).fetchone()
    if row is None or not row["last_heartbeat"]:
        return None
    try:
        beat = Heartbeat.model_validate_json(row["last_heartbeat"])
    except ValueError:  # stored by an older hub in another shape: as if unknown
        return None
    return next((c for c in beat.cameras if c.camera == name), None)


def _camera_health(heartbeat: str | None) -> dict[str, str]:
    if not heartbeat:
        return {}
    return {c["camera"]: c["state"] for c in json.loads(heartbeat).get("cameras", [])}


def _camera(
    conn: sqlite3.Connection, site: str, device: str, name: str, device_state: str | None, state: str | None
) -> Camera:
    last = conn.execute(
        f"SELECT e.id, e.time, e.kind, s.path FROM events e LEFT JOIN snapshots s ON s.event_id = e.id "
        f"AND s.site = e.site AND s.device = e.device WHERE e.site = ? AND e.device = ? AND e.camera = ? AND {_FEED} "
        "ORDER BY e.time DESC LIMIT 1",
        (site, device, name),
    ).fetchone()
    online = device_state == "online" and state in (None, "online")
    return Camera(
        id=camera_id(site, device, name),
        site=site,
        device=device,
        name=name,
        online=online,
        state=state,
        last_alert=AlertRef(id=last["id"], time=last["time"], kind=last["kind"]) if last else None,
        snapshot=snapshot_url(last["id"]) if last and last["path"] else None,
    )


def feed(
    conn: sqlite3.Connection,
    principal: Principal,
    camera: str | None = None,
    zone: str | None = None,
    since: float | None = None,
    until: float | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: int = 30,
) -> AlertPage:
    """Newest first. `before` pages back; `after` asks for what arrived since (the live feed)."""
    visible, params = _visible_sql(principal)
    where = [_FEED, visible]
    if camera is not None:
        split = split_camera_id(camera)
        if split is None:
            return AlertPage(items=[], next=None, newest=None)
        where.append("site = ? AND device = ? AND camera = ?")
        params.extend(split)
    if zone:
        where.append("json_extract(detail, '$.zone') = ?")
        params.append(zone)
    if since is not None:
        where.append("time >= ?")
        params.append(since)
    if until is not None:
        where.append("time < ?")
        params.append(until)
    for cursor, sign in ((before, "<"), (after, ">")):
        if cursor:
            t, rowid = _cursor(cursor)
            where.append(f"(time {sign} ? OR (time = ? AND rowid {sign} ?))")
            params.extend([t, t, rowid])
    limit = max(1, min(limit, PAGE_MAX))
    # The page is chosen in the inner query (an index walk on time), the snapshots joined after.
    sql = (
        f"SELECT e.*, s.path FROM ({_COLUMNS} FROM events WHERE {' AND '.join(where)} "
        "ORDER BY time DESC, rowid DESC LIMIT ?) e "
        "LEFT JOIN snapshots s ON s.event_id = e.id AND s.site = e.site AND s.device = e.device "
        "ORDER BY e.time DESC, e.rowid DESC"
    )
    rows = conn.execute(sql, [*params, limit + 1]).fetchall()
    items = [_alert(r) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return AlertPage(
        items=items,
        next=_cursor_of(last) if last is not None else None,
        newest=_cursor_of(rows[0]) if rows else after,
    )


def _cursor_of(row: sqlite3.Row) -> str:
    return f"{row['time']!r}:{row['rowid']}"


def _cursor(text: str) -> tuple[float, int]:
    try:
        t, rowid = text.split(":")
        return float(t), int(rowid)
    except ValueError:
        raise ValueError(f"not a page cursor: {text[:40]!r}") from None


def _alert(r: sqlite3.Row) -> Alert:
    detail = json.loads(r["detail"]) if r["detail"] else {}
    score = detail.get("max_score", detail.get("score"))
    return Alert(
        id=r["id"],
        camera=camera_id(r["site"], r["device"], r["camera"]) if r["camera"] else None,
        site=r["site"],
        device=r["device"],
        kind=r["kind"],
        time=r["time"],
        end=r["end"],
        zone=detail.get("zone") or None,
        score=float(score) if isinstance(score, int | float) else None,
        persons=detail.get("persons") if isinstance(detail.get("persons"), int) else None,
        test=bool(r["test"]),
        snapshot=snapshot_url(r["id"]) if r["path"] else None,
    )


def get_alert(conn: sqlite3.Connection, principal: Principal, event_id: str) -> Alert | None:
    """The event as it stands now: its first message, with the end and figures of the latest."""
    rows = conn.execute(
        f"SELECT e.*, s.path FROM ({_COLUMNS}, seq FROM events WHERE id = ?) e "
        "LEFT JOIN snapshots s ON s.event_id = e.id AND s.site = e.site AND s.device = e.device ORDER BY e.seq",
        (event_id,),
    ).fetchall()
    if not rows or not principal.may_see_camera(rows[0]["site"], rows[0]["device"], rows[0]["camera"]):
        return None
    first, latest = _alert(rows[0]), _alert(rows[-1])
    return first.model_copy(
        update={"end": latest.end, "score": latest.score or first.score, "persons": latest.persons or first.persons}
    )


def snapshot_file(conn: sqlite3.Connection, data_dir: Path, principal: Principal, event_id: str) -> Path | None:
    alert = get_alert(conn, principal, event_id)
    if alert is None:
        return None
    row = conn.execute(
        "SELECT path FROM snapshots WHERE event_id = ? AND site = ? AND device = ?",
        (event_id, alert.site, alert.device),
    ).fetchone()
    if row is None:
        return None
    path = (data_dir / row["path"]).resolve()
    return path if path.is_relative_to(data_dir.resolve()) and path.is_file() else None


def list_devices(conn: sqlite3.Connection) -> list[Device]:
    rejections = {
        (r["site"], r["device"]): r["n"]
        for r in conn.execute("SELECT site, device, sum(count) AS n FROM rejections GROUP BY site, device")
    }
    out = []
    for row in conn.execute("SELECT * FROM devices ORDER BY site, device"):
        beat = json.loads(row["last_heartbeat"]) if row["last_heartbeat"] else {}
        out.append(
            Device(
                site=row["site"],
                device=row["device"],
                state=row["state"],
                last_seen=row["last_seen"],
                agent_version=row["agent_version"],
                cameras=json.loads(row["cameras"]) if row["cameras"] else [],
                heartbeat_time=row["heartbeat_time"],
                cpu_percent=beat.get("cpu_percent"),
                memory_mb=beat.get("memory_mb"),
                disk_free_bytes=beat.get("disk_free_bytes"),
                disk_total_bytes=beat.get("disk_total_bytes"),
                temperature_c=beat.get("temperature_c"),
                outbox_depth=beat.get("outbox_depth"),
                outbox_dropped=beat.get("outbox_dropped"),
                rejections=rejections.get((row["site"], row["device"]), 0),
            )
        )
    return out
