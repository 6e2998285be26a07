"""Escalation to the police station responsible for a site, and the police's answer.

The centre (admin) escalates an incident; the site's police acknowledge it, dispatch officers,
report them on scene and done. Each step sets `incidents.police_state`, adds a history row
(action `police.<step>`, so the incident's own record and its webhooks carry it) and an audit row.
The police console follows the steps live (`changes_since`, behind an SSE stream that resumes
from Last-Event-ID after a reconnect).
"""

from __future__ import annotations

import sqlite3
import time

from hub.models import Principal
from hub.services import audit, incidents
from hub.services.incidents import Incident, IncidentError
from hub.store import transaction

# step -> (police states it starts from, state it leads to, roles that take it)
STEPS: dict[str, tuple[frozenset[str | None], str, frozenset[str]]] = {
    "escalate": (frozenset({None}), "escalated", frozenset({"admin"})),
    "acknowledge": (frozenset({"escalated"}), "acknowledged", frozenset({"police"})),
    "dispatch": (frozenset({"acknowledged"}), "dispatched", frozenset({"police"})),
    "on_scene": (frozenset({"dispatched"}), "on_scene", frozenset({"police"})),
    "done": (frozenset({"dispatched", "on_scene"}), "done", frozenset({"police", "admin"})),
}


def step(
    conn: sqlite3.Connection, principal: Principal, actor: audit.Actor, incident_id: int, name: str, note: str = ""
) -> Incident:
    rule = STEPS.get(name)
    if rule is None:
        raise IncidentError(f"no police step {name!r}; steps: {', '.join(STEPS)}", 422)
    sources, target, roles = rule
    now = time.time()
    with transaction(conn):
        row = incidents.visible_row(conn, principal, incident_id)
        if principal.role not in roles:
            raise IncidentError(f"a {principal.role} may not {name} an incident", 403)
        if row["police_state"] not in sources:
            raise IncidentError(
                f"incident {incident_id} is {row['police_state'] or 'not escalated'}: cannot {name}", 409
            )
        if name == "escalate" and row["site"] is None:
            raise IncidentError("only an incident at a site has a police station to escalate to", 409)
        conn.execute("UPDATE incidents SET police_state = ?, updated = ? WHERE id = ?", (target, now, incident_id))
        incidents.add_history(conn, incident_id, actor, f"police.{name}", row["status"], note.strip(), now)
        audit.record(conn, actor, f"police.{name}", str(incident_id), site=row["site"], state=target)
    return incidents.get(conn, principal, incident_id).incident


def escalate_by_rule(conn: sqlite3.Connection, actor: audit.Actor, incident_id: int, rule: str, now: float) -> None:
    """A triage rule with `escalate: true` sends its new incident straight to the site's police.
    Call inside the transaction that opened the incident."""
    row = conn.execute("SELECT status, site, police_state FROM incidents WHERE id = ?", (incident_id,)).fetchone()
    if row is None or row["site"] is None or row["police_state"] is not None:
        return
    conn.execute("UPDATE incidents SET police_state = 'escalated', updated = ? WHERE id = ?", (now, incident_id))
    incidents.add_history(conn, incident_id, actor, "police.escalate", row["status"], f"rule {rule}", now)
    audit.record(conn, actor, "police.escalate", str(incident_id), site=row["site"], rule=rule)


def escalated(conn: sqlite3.Connection, principal: Principal, limit: int = 100) -> list[Incident]:
    """Escalated incidents the caller may see, newest first (the console's list)."""
    clause, params = incidents.visible_sql(principal)
    ids = conn.execute(
        f"SELECT id FROM incidents WHERE police_state IS NOT NULL AND {clause} ORDER BY id DESC LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [incidents.get(conn, principal, r[0]).incident for r in ids]


def cursor(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT coalesce(max(id), 0) FROM incident_events").fetchone()[0])


def changes_since(conn: sqlite3.Connection, principal: Principal, after: int) -> list[tuple[int, Incident]]:
    """(history row id, incident) for each police step after `after` on an incident the caller
    may see, oldest first: what the console's stream sends."""
    clause, params = incidents.visible_sql(principal)
    rows = conn.execute(
        "SELECT e.id, e.incident_id FROM incident_events e JOIN incidents i ON i.id = e.incident_id "
        f"WHERE e.id > ? AND e.action LIKE 'police.%' AND {clause.replace('grid', 'i.grid').replace('site', 'i.site')} "
        "ORDER BY e.id LIMIT 200",
        [after, *params],
    ).fetchall()
    return [(r[0], incidents.get(conn, principal, r[1]).incident) for r in rows]
