"""The grid worker's phone pages (also the centre's and the police's): a queue of incidents and
one incident with its history, photos and the steps the caller's role may take from its status.
Rendered from hub/services/incidents.py; the buttons call /api/v1/incidents with the page's CSRF
token (hub/web/static/incidents.js)."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from hub.api.deps import Conn, RowId, page_allow
from hub.api.pages import render
from hub.models import Principal
from hub.services import figures, incidents, intake, triage
from hub.services.figures import By
from hub.services.incidents import STATUSES, TRANSITIONS, IncidentError

router = APIRouter(include_in_schema=False)
# A worker's queue: what waits for them first, then what they are on, then the rest.
_QUEUE_ORDER = {"dispatched": 0, "rework": 0, "in_progress": 1, "reported": 2, "accepted": 2, "resolved": 3}


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(
    request: Request,
    conn: Conn,
    status: str | None = Query(None, max_length=20),
    overdue: bool = Query(False),
    principal: Principal = page_allow("admin", "grid_worker", "police"),
) -> Response:
    chosen = status if status in STATUSES else None
    items = incidents.list_incidents(conn, principal, chosen, limit=200, overdue=overdue)
    items.sort(key=lambda i: (_QUEUE_ORDER.get(i.status, 9), not i.overdue, -i.id))
    return render(
        request, "incidents.html", principal, active="incidents", items=items, statuses=STATUSES, chosen=chosen or "",
        overdue=overdue,
    )  # fmt: skip


@router.get("/incidents/figures", response_class=HTMLResponse)
def figures_page(
    request: Request,
    conn: Conn,
    by: By = Query("grid"),
    days: int = Query(30, ge=1, le=3660),
    principal: Principal = page_allow("admin", "grid_worker", "police"),
) -> Response:
    """Closure, on-time and rework rates as a chart (ECharts, shipped in the package) and a table."""
    until = time.time()
    table = figures.figures(conn, principal, by, until - days * 86400, until)
    return render(
        request, "incident_figures.html", principal, active="incidents", table=table, by=by, days=days,
        data=table.model_dump_json(),
    )  # fmt: skip


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(
    request: Request,
    incident_id: RowId,
    conn: Conn,
    raised: str | None = Query(None, max_length=10, description="new or attached: the alert page's raise."),
    principal: Principal = page_allow("admin", "grid_worker", "police"),
) -> Response:
    try:
        detail = incidents.get(conn, principal, incident_id)
    except IncidentError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    status = detail.incident.status
    actions = [
        name
        for name, step in TRANSITIONS.items()
        if name != "note" and status in step.sources and principal.role in step.roles
    ]
    return render(
        request,
        "incident.html",
        principal,
        active="incidents",
        item=detail.incident,
        history=detail.history,
        actions=actions,
        may_note="note" not in actions and status in TRANSITIONS["note"].sources,
        may_upload=principal.role in ("admin", "grid_worker"),
        raised=raised,
        with_snapshot=incidents.alerts_with_snapshot(conn, incident_id),
        window=intake.dedup_minutes(triage.get_rules(conn), detail.incident.category),
    )
