"""Incidents that do not come from the triage worker's batches: an operator raising one from an
alert by hand, and a report posted over Open311. Both go through triage's dedup window (an open
incident of the same place and category, updated within the window, takes the new alert or report
instead of a second incident opening) and, for reports, its rules (kind `open311`).

The place of a report is where it says it is: within `SAME_PLACE_METRES` of an open report's
position, or the same address text when it gives only an address.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass

from hub.models import Principal, Priority, Role
from hub.services import alerts, audit, incidents, police, triage
from hub.services.incidents import FINAL, IncidentError, NewIncident
from hub.store import transaction

# Two residents reporting the same broken door from their phones stand a few tens of metres apart.
SAME_PLACE_METRES = 50.0
DEFAULT_DEDUP_MINUTES = 30.0  # the TriageRule default, for a category no rule proposes
REPORT_KIND = "open311"  # the kind a triage rule names to match Open311 reports
# Who may raise an incident from an alert: the centre's operators (the route and the alert page).
RAISE_ROLES: tuple[Role, ...] = ("admin",)
# The category the alert page offers first for an alert of each kind.
SUGGESTED_CATEGORY = {"person": "intrusion", "door_alarm": "forced_door", "camera_offline": "camera_offline"}
_OPEN = f"status NOT IN ({','.join(repr(s) for s in sorted(FINAL))})"


@dataclass(frozen=True)
class Raised:
    """The incident an alert or a report landed on, and whether it was an open one it joined."""

    incident_id: int
    attached: bool
    dedup_minutes: float


def dedup_minutes(rules: list[triage.TriageRule], category: str) -> float:
    """The window of the first rule proposing this category (as triage would apply), else 30 min."""
    return next((r.dedup_minutes for r in rules if r.category == category), DEFAULT_DEDUP_MINUTES)


def raise_by_hand(
    conn: sqlite3.Connection,
    principal: Principal,
    actor: audit.Actor,
    event_id: str,
    category: str,
    priority: Priority,
    note: str,
    now: float | None = None,
) -> Raised:
    """An operator raises an incident from an alert they can see. An open incident of the same
    place and category inside the dedup window takes the alert instead (a history row says who
    attached it and why); an alert already on an incident answers 409 naming it, never a second."""
    now = time.time() if now is None else now
    alert = alerts.get_alert(conn, principal, event_id)
    if alert is None:
        raise IncidentError(f"no alert {event_id[:64]!r}", 404)
    camera = alert.camera.split(".")[2] if alert.camera else None
    window = dedup_minutes(triage.get_rules(conn), category)
    with transaction(conn):
        existing = incidents.incident_of_alert(conn, event_id)
        if existing is not None:
            raise IncidentError(f"alert {event_id} is already on incident {existing}", 409)
        found = triage.open_at(conn, alert.site, alert.device, camera, category, now - window * 60)
        if found is not None:
            status = incidents.visible_row(conn, principal, found)["status"]
            incidents.attach(conn, found, event_id, now)
            incidents.add_history(conn, found, actor, "attach", status, f"{event_id} {note.strip()}".strip(), now)
            audit.record(conn, actor, "incidents.attach", str(found), alert=event_id)
            return Raised(found, True, window)
        where = alert.camera or f"{alert.site}.{alert.device}"
        new = NewIncident(
            category=category,
            priority=priority,
            title=f"{alert.kind} @ {where}",
            description=note.strip(),
            site=alert.site,
            device=alert.device,
            camera=camera,
            source="manual",
        )
        return Raised(incidents.create(conn, actor, new, [event_id], now), False, window)


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Equirectangular distance: exact enough within a village, cheap for every open report."""
    x = math.radians(lon2 - lon1) * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(x, math.radians(lat2 - lat1)) * 6_371_000


def _report_at(
    conn: sqlite3.Connection, category: str, lon: float | None, lat: float | None, address: str, since: float
) -> int | None:
    base = f"SELECT id, lon, lat FROM incidents WHERE source = 'open311' AND category = ? AND {_OPEN} AND updated >= ?"
    if lon is not None and lat is not None:
        rows = conn.execute(f"{base} AND lon IS NOT NULL AND lat IS NOT NULL ORDER BY id DESC", (category, since))
        return next((int(r[0]) for r in rows if _metres(lon, lat, r[1], r[2]) <= SAME_PLACE_METRES), None)
    # Address only: post_report ends the description with the address, after a blank line.
    tail = "\n\n" + address
    found = conn.execute(
        f"{base} AND lon IS NULL AND substr(description, -?) = ? ORDER BY id DESC LIMIT 1",
        (category, since, len(tail), tail),
    ).fetchone()
    return None if found is None else int(found[0])


def post_report(
    conn: sqlite3.Connection,
    actor: audit.Actor,
    code: str,
    description: str,
    lon: float | None,
    lat: float | None,
    address: str,
    now: float | None = None,
) -> Raised:
    """A report from Open311 (its fields already checked) through triage: the first rule of kind
    `open311` whose detail matches (`service_code`) sets category, priority, dedup window and
    escalation; without one the report keeps its service code, normal priority, 30 min. A report
    of the same place and category inside the window is added to that incident's history."""
    now = time.time() if now is None else now
    address = " ".join(address.split())
    candidate = triage.Candidate(REPORT_KIND, None, None, None, now, {"service_code": code})
    rules = triage.get_rules(conn)
    rule = next((r for r in rules if r.matches(candidate)), None)
    category = rule.category if rule else code
    window = rule.dedup_minutes if rule else DEFAULT_DEDUP_MINUTES
    with transaction(conn):
        found = _report_at(conn, category, lon, lat, address, now - window * 60)
        if found is not None:
            status = conn.execute("SELECT status FROM incidents WHERE id = ?", (found,)).fetchone()[0]
            conn.execute("UPDATE incidents SET updated = ? WHERE id = ?", (now, found))
            incidents.add_history(conn, found, actor, "report", status, description, now)
            audit.record(conn, actor, "incidents.report", str(found), category=category)
            return Raised(found, True, window)
        new = NewIncident(
            category=category,
            priority=rule.priority if rule else "normal",
            title=description.splitlines()[0][:80],
            description=description + (f"\n\n{address}" if address else ""),
            lon=lon,
            lat=lat,
            source="open311",
        )
        incident_id = incidents.create(conn, actor, new, [], now)
        if rule is not None and rule.escalate:
            police.escalate_by_rule(conn, actor, incident_id, rule.name, now)  # a no-op without a site
        return Raised(incident_id, False, window)
