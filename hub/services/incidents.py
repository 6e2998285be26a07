"""Incidents of the grid registry: their lifecycle, their append-only history, who may see them.

reported -> accepted | rejected; accepted -> dispatched (the deadline clock starts); dispatched ->
in_progress (the grid worker takes it) -> resolved -> verified -> closed. A failed verification
sends a resolved incident back as rework (the worker takes it again); an open incident can be
suspended with a reason and resumed to where it was. Each step is one row of `incident_events`
(who, when, note, photos), written in the same transaction as the status change, and only the
roles in `TRANSITIONS` may take it. What a caller may not see is reported as not existing.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from hub.config import IncidentsConfig
from hub.models import Principal, Role
from hub.models import Priority as Priority  # re-exported: routes and triage name it from here
from hub.services import audit, grids, webhooks
from hub.store import transaction

Status = Literal[
    "reported",
    "accepted",
    "rejected",
    "dispatched",
    "in_progress",
    "resolved",
    "verified",
    "closed",
    "rework",
    "suspended",
]
STATUSES: tuple[Status, ...] = (
    "reported", "accepted", "rejected", "dispatched", "in_progress", "resolved", "verified", "closed", "rework",
    "suspended",
)  # fmt: skip
Action = Literal[
    "accept", "reject", "dispatch", "start", "resolve", "verify", "rework", "close", "suspend", "resume", "note"
]
Source = Literal["manual", "rule", "open311"]
FINAL: frozenset[str] = frozenset({"closed", "rejected"})
# Done from the worker's side: a late verification does not make the work late.
SETTLED: frozenset[str] = FINAL | {"resolved", "verified"}
OPEN_FOR_SUSPEND = frozenset({"accepted", "dispatched", "in_progress", "rework"})


@dataclass(frozen=True)
class Transition:
    sources: frozenset[str]
    target: str | None  # None: stays (note) or goes back (resume)
    roles: frozenset[Role]
    needs_note: bool = False


def _t(sources: set[str], target: str | None, roles: set[Role], needs_note: bool = False) -> Transition:
    return Transition(frozenset(sources), target, frozenset(roles), needs_note)


# The centre's operators are admins; grid workers do the work on the ground.
TRANSITIONS: dict[str, Transition] = {
    "accept": _t({"reported"}, "accepted", {"admin"}),
    "reject": _t({"reported"}, "rejected", {"admin"}, needs_note=True),
    "dispatch": _t({"accepted"}, "dispatched", {"admin"}),
    "start": _t({"dispatched", "rework"}, "in_progress", {"admin", "grid_worker"}),
    "resolve": _t({"in_progress"}, "resolved", {"admin", "grid_worker"}, needs_note=True),
    "verify": _t({"resolved"}, "verified", {"admin"}),
    "rework": _t({"resolved"}, "rework", {"admin"}, needs_note=True),
    "close": _t({"verified"}, "closed", {"admin"}),
    "suspend": _t(set(OPEN_FOR_SUSPEND), "suspended", {"admin"}, needs_note=True),
    "resume": _t({"suspended"}, None, {"admin"}),
    "note": _t({str(s) for s in STATUSES} - FINAL, None, {"admin", "grid_worker", "police"}),
}


class IncidentError(Exception):
    """A refused step: `status` is the HTTP status a route answers with."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IncidentEvent(_Model):
    id: int = Field(description="Position in the incident's history.")
    time: float = Field(description="When, epoch seconds UTC.")
    actor: str = Field(description="Who: a user name, or 'triage' / 'open311:<key name>'.")
    role: str | None = Field(description="Their role at the time.")
    action: str = Field(description="create, accept, reject, dispatch, start, resolve, verify, rework, close, ...")
    from_status: str | None = Field(description="Status before (null for create).")
    to_status: str = Field(description="Status after.")
    note: str = Field(description="What they wrote (a reason for reject, rework and suspend).")
    photos: list[str] = Field(description="Photo names (GET /api/v1/incidents/{id}/photos/{name}).")


class Incident(_Model):
    id: int = Field(description="The incident number.")
    status: Status = Field(description="Where it is in the lifecycle.")
    grid: str | None = Field(description="Grid code, from the camera's place; null if unplaced.")
    category: str = Field(description="What kind of incident (intrusion, forced_door, camera_offline, ...).")
    priority: Priority = Field(description="With the category, sets the deadline from dispatch (hub config incidents).")
    title: str = Field(description="One line.")
    description: str = Field(description="What was seen or reported.")
    site: str | None = Field(description="Site of the camera or box, if any.")
    device: str | None = Field(description="Box, if any.")
    camera: str | None = Field(description="Camera name on the box, if any.")
    lon: float | None = Field(description="Longitude (WGS84), if known.")
    lat: float | None = Field(description="Latitude (WGS84), if known.")
    source: Source = Field(description="manual (from an alert), rule (triage) or open311.")
    created: float = Field(description="Reported at, epoch seconds UTC.")
    updated: float = Field(description="Last change.")
    dispatched: float | None = Field(description="When the deadline clock started.")
    due: float | None = Field(description="Deadline for resolution.")
    resolved: float | None = Field(description="Last resolution.")
    closed: float | None = Field(description="When it was closed (or rejected).")
    reworks: int = Field(description="Failed verifications so far.")
    police_state: str | None = Field(description="Escalated to the police: escalated, acknowledged, dispatched, ...")
    overdue: bool = Field(description="Past its deadline and not yet resolved.")
    alerts: list[str] = Field(description="Ids of the alerts attached to it.")
    refs: dict[str, str] = Field(description="References in outside systems: system -> id.")


class IncidentDetail(_Model):
    incident: Incident
    history: list[IncidentEvent]


class NewIncident(_Model):
    category: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$", description="Category code.")
    priority: Priority = Field("normal", description="urgent, high, normal or low.")
    title: str = Field(min_length=1, max_length=200, description="One line.")
    description: str = Field("", max_length=4000, description="Details.")
    site: str | None = Field(None, max_length=64, description="Site of the camera or box.")
    device: str | None = Field(None, max_length=64, description="Box.")
    camera: str | None = Field(None, max_length=64, description="Camera name on the box.")
    lon: float | None = Field(None, ge=-180, le=180, description="Longitude (WGS84).")
    lat: float | None = Field(None, ge=-90, le=90, description="Latitude (WGS84).")
    source: Source = Field("manual", description="Where it came from.")


_COLUMNS = (
    "id, status, grid, category, priority, title, description, site, device, camera, lon, lat, source, created, "
    "updated, dispatched, due, resolved, closed, reworks, police_state"
)


def visible_sql(principal: Principal) -> tuple[str, list[str]]:
    """Admins see every incident, grid workers their grids', police their sites'; others none."""
    if principal.role == "admin":
        return "1", []
    if principal.role == "grid_worker" and principal.grids:
        return f"grid IN ({','.join('?' * len(principal.grids))})", list(sorted(principal.grids))
    if principal.role == "police" and principal.sites:
        return f"site IN ({','.join('?' * len(principal.sites))})", sorted(principal.sites)
    return "0", []


def _incident(conn: sqlite3.Connection, r: sqlite3.Row, now: float) -> Incident:
    alerts = [
        a[0]
        for a in conn.execute(
            "SELECT event_id FROM incident_alerts WHERE incident_id = ? ORDER BY attached", (r["id"],)
        )
    ]
    refs = {s: v for s, v in conn.execute("SELECT system, ref FROM incident_refs WHERE incident_id = ?", (r["id"],))}
    values = {key: r[key] for key in r.keys()}  # noqa: SIM118 (sqlite3.Row is not a Mapping)
    overdue = r["due"] is not None and r["due"] < now and r["status"] not in SETTLED
    return Incident(**values, overdue=overdue, alerts=alerts, refs=refs)


def list_incidents(
    conn: sqlite3.Connection,
    principal: Principal | None,
    status: str | None = None,
    grid: str | None = None,
    limit: int = 200,
    offset: int = 0,
    overdue: bool = False,
) -> list[Incident]:
    """Newest first. `principal` None: everything (the CLI, run by whoever holds hub.db).
    `overdue`: only those past their deadline and not yet resolved."""
    where: list[str] = ["1"]
    params: list[object] = []
    if principal is not None:
        clause, scope = visible_sql(principal)
        where, params = [clause], list(scope)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if grid is not None:
        where.append("grid = ?")
        params.append(grid)
    now = time.time()
    if overdue:
        where.append(f"due < ? AND status NOT IN ({','.join('?' * len(SETTLED))})")
        params.extend([now, *sorted(SETTLED)])
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM incidents WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [_incident(conn, r, now) for r in rows]


def _row(conn: sqlite3.Connection, principal: Principal | None, incident_id: int) -> sqlite3.Row:
    clause, params = visible_sql(principal) if principal is not None else ("1", list[str]())
    row = conn.execute(f"SELECT {_COLUMNS} FROM incidents WHERE id = ? AND {clause}", [incident_id, *params]).fetchone()
    if row is None:
        raise IncidentError(f"no incident {incident_id}", 404)
    return row  # type: ignore[no-any-return]


def get(conn: sqlite3.Connection, principal: Principal | None, incident_id: int) -> IncidentDetail:
    row = _row(conn, principal, incident_id)
    history = [
        IncidentEvent(
            id=e["id"],
            time=e["time"],
            actor=e["actor"],
            role=e["role"],
            action=e["action"],
            from_status=e["from_status"],
            to_status=e["to_status"],
            note=e["note"],
            photos=json.loads(e["photos"]),
        )
        for e in conn.execute(
            "SELECT id, time, actor, role, action, from_status, to_status, note, photos FROM incident_events "
            "WHERE incident_id = ? ORDER BY id",
            (incident_id,),
        )
    ]
    return IncidentDetail(incident=_incident(conn, row, time.time()), history=history)


def _history(
    conn: sqlite3.Connection, incident_id: int, actor: audit.Actor, action: str, old: str | None, new: str, note: str,
    photos: list[str], now: float,
) -> None:  # fmt: skip
    cur = conn.execute(
        "INSERT INTO incident_events (incident_id, time, actor, role, action, from_status, to_status, note, photos) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (incident_id, now, actor.name, actor.role, action, old, new, note, json.dumps(photos)),
    )
    # The outbound connector: one signed webhook per change, keyed by the history row.
    item = _incident(conn, _row(conn, None, incident_id), now)
    change = {"actor": actor.name, "time": now, "from_status": old, "to_status": new, "note": note, "photos": photos}
    webhooks.enqueue(
        conn,
        f"incident-{incident_id}-{cur.lastrowid}",
        {"type": f"incident.{action}", "incident": item.model_dump(), "change": change},
        now,
    )


def create(
    conn: sqlite3.Connection, actor: audit.Actor, new: NewIncident, alert_ids: list[str], now: float | None = None
) -> int:
    """A new incident in 'reported', its first history row and its alerts, in one transaction."""
    now = time.time() if now is None else now
    grid = grids.grid_of(conn, new.site, new.device, new.camera)
    if grid is None and new.lon is not None:
        grid = grids.grid_at(conn, new.lon, new.lat)
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        cur = conn.execute(
            "INSERT INTO incidents (status, grid, category, priority, title, description, site, device, camera, lon, "
            "lat, source, created, updated) VALUES ('reported', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (grid, new.category, new.priority, new.title, new.description, new.site, new.device, new.camera, new.lon,
             new.lat, new.source, now, now),
        )  # fmt: skip
        incident_id = int(cur.lastrowid or 0)
        for event_id in alert_ids:
            conn.execute("INSERT OR IGNORE INTO incident_alerts VALUES (?, ?, ?)", (incident_id, event_id, now))
        _history(conn, incident_id, actor, "create", None, "reported", new.description, [], now)
        audit.record(conn, actor, "incidents.create", str(incident_id), category=new.category, alerts=alert_ids)
    except BaseException:
        if own:
            conn.execute("ROLLBACK")
        raise
    if own:
        conn.execute("COMMIT")
    return incident_id


def transition(
    conn: sqlite3.Connection,
    principal: Principal,
    actor: audit.Actor,
    incident_id: int,
    action: str,
    note: str = "",
    photos: list[str] | None = None,
    now: float | None = None,
    deadlines: IncidentsConfig | None = None,
) -> Incident:
    """Take one step of the lifecycle. 404 if the caller may not see the incident, 403 if their
    role may not take this step, 409 if the incident is not in a status the step starts from.
    `deadlines`: the hub config's table (category x priority) that dispatch stamps `due` from."""
    step = TRANSITIONS.get(action)
    if step is None:
        raise IncidentError(f"no action {action!r}; actions: {', '.join(TRANSITIONS)}", 422)
    photos = photos or []
    now = time.time() if now is None else now
    with transaction(conn):
        row = _row(conn, principal, incident_id)
        if principal.role not in step.roles:
            raise IncidentError(f"a {principal.role} may not {action} an incident", 403)
        old = row["status"]
        if old not in step.sources:
            raise IncidentError(
                f"incident {incident_id} is {old}: {action} needs {' or '.join(sorted(step.sources))}", 409
            )
        if step.needs_note and not note.strip():
            raise IncidentError(f"{action} needs a note saying why", 422)
        new = step.target or old
        if action == "resume":
            back = conn.execute("SELECT suspended_from FROM incidents WHERE id = ?", (incident_id,)).fetchone()[0]
            new = back or "accepted"
        sets = {"status": new, "updated": now}
        if action == "dispatch":
            hours = (deadlines or IncidentsConfig()).hours(row["category"], row["priority"])
            sets.update(dispatched=now, due=now + hours * 3600)
        elif action == "resolve":
            sets["resolved"] = now
        elif action in ("close", "reject"):
            sets["closed"] = now
        elif action == "rework":
            sets["reworks"] = row["reworks"] + 1
        elif action == "suspend":
            sets["suspended_from"] = old
        elif action == "resume":
            sets["suspended_from"] = None
        assignments = ", ".join(f"{key} = ?" for key in sets)
        conn.execute(f"UPDATE incidents SET {assignments} WHERE id = ?", [*sets.values(), incident_id])
        _history(conn, incident_id, actor, action, old, new, note.strip(), photos, now)
        audit.record(conn, actor, f"incidents.{action}", str(incident_id), status=new)
    return _incident(conn, _row(conn, principal, incident_id), time.time())


def add_history(
    conn: sqlite3.Connection, incident_id: int, actor: audit.Actor, action: str, status: str, note: str, now: float
) -> None:
    """A history row (and its webhook) that does not change the status: police steps."""
    _history(conn, incident_id, actor, action, status, status, note, [], now)


def visible_row(conn: sqlite3.Connection, principal: Principal, incident_id: int) -> sqlite3.Row:
    """The incident's row if the caller may see it; IncidentError 404 otherwise."""
    return _row(conn, principal, incident_id)


def attach(conn: sqlite3.Connection, incident_id: int, event_id: str, now: float) -> None:
    conn.execute("INSERT OR IGNORE INTO incident_alerts VALUES (?, ?, ?)", (incident_id, event_id, now))
    conn.execute("UPDATE incidents SET updated = ? WHERE id = ?", (now, incident_id))


def incident_of_alert(conn: sqlite3.Connection, event_id: str) -> int | None:
    row = conn.execute("SELECT incident_id FROM incident_alerts WHERE event_id = ? LIMIT 1", (event_id,)).fetchone()
    return int(row[0]) if row else None


PHOTO_MAX_BYTES = 8 * 1024 * 1024
PHOTO_DIR = "incident-photos"


def save_photo(conn: sqlite3.Connection, principal: Principal, data_dir: Path, incident_id: int, data: bytes) -> str:
    """Store a JPEG or PNG for an incident the caller can see; returns its name (its SHA-256), to
    be named in a transition's photos. Anything that is not a whole image is refused."""
    _row(conn, principal, incident_id)
    if not data or len(data) > PHOTO_MAX_BYTES:
        raise IncidentError(f"a photo is 1 byte to {PHOTO_MAX_BYTES // 1024 // 1024} MB", 413 if data else 422)
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            image.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise IncidentError("not a JPEG or PNG image", 422) from None
    if kind not in ("JPEG", "PNG"):
        raise IncidentError(f"a {kind} image: send a JPEG or PNG", 422)
    name = hashlib.sha256(data).hexdigest()[:32] + (".jpg" if kind == "JPEG" else ".png")
    folder = data_dir / PHOTO_DIR / str(incident_id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists():
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return name


_PHOTO_NAME = re.compile(r"^[0-9a-f]{32}\.(jpg|png)$")


def photo_path(conn: sqlite3.Connection, principal: Principal, data_dir: Path, incident_id: int, name: str) -> Path:
    _row(conn, principal, incident_id)
    path = data_dir / PHOTO_DIR / str(incident_id) / name
    if not _PHOTO_NAME.match(name) or not path.is_file():
        raise IncidentError(f"no photo {name[:64]!r} on incident {incident_id}", 404)
    return path


def check_photos(data_dir: Path, incident_id: int, names: list[str]) -> None:
    for name in names:
        if not _PHOTO_NAME.match(name) or not (data_dir / PHOTO_DIR / str(incident_id) / name).is_file():
            raise IncidentError(f"photo {name[:64]!r} was not uploaded to incident {incident_id}", 422)


def alerts_with_snapshot(conn: sqlite3.Connection, incident_id: int) -> set[str]:
    """The attached alerts that have a snapshot to show (a gate's alarm without a camera has none)."""
    rows = conn.execute(
        "SELECT a.event_id FROM incident_alerts a JOIN snapshots s ON s.event_id = a.event_id WHERE a.incident_id = ?",
        (incident_id,),
    )
    return {r[0] for r in rows}


def evidence_snapshot(
    conn: sqlite3.Connection, principal: Principal, data_dir: Path, incident_id: int, event_id: str
) -> Path:
    """The snapshot of an alert attached to an incident the caller may see: a grid worker sees the
    evidence of their incidents without being given the camera itself."""
    _row(conn, principal, incident_id)
    row = conn.execute(
        "SELECT s.path FROM incident_alerts a JOIN snapshots s ON s.event_id = a.event_id "
        "WHERE a.incident_id = ? AND a.event_id = ?",
        (incident_id, event_id),
    ).fetchone()
    path: Path | None = (data_dir / str(row[0])).resolve() if row else None
    if path is None or not path.is_relative_to(data_dir.resolve()) or not path.is_file():
        raise IncidentError(f"no snapshot of alert {event_id[:40]!r} on incident {incident_id}", 404)
    return path
