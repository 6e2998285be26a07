"""Grid incidents: the list each role may see, one incident with its history, raising one from an
alert, lifecycle steps (the service checks which role may take which step), photos."""

from __future__ import annotations

import time
from datetime import datetime

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from contract.messages import INT64_MAX
from hub.api.deps import Conn, RowId, actor, allow
from hub.models import Principal
from hub.services import audit, figures, incidents, intake
from hub.services.figures import By, FigureTable
from hub.services.incidents import Incident, IncidentDetail, IncidentError, Priority, Status
from hub.services.intake import RAISE_ROLES

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])


class IncidentList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    items: list[Incident] = Field(description="Newest first.")


class FromAlert(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    alert_id: str = Field(min_length=1, max_length=64, description="The alert (event id) to raise it from.")
    category: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$", description="Category code.")
    priority: Priority = Field("normal", description="urgent, high, normal or low.")
    note: str = Field("", max_length=4000, description="What the operator saw.")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    note: str = Field("", max_length=4000, description="Required for reject, resolve, rework and suspend.")
    photos: list[str] = Field(default_factory=list, max_length=20, description="Names from the photos upload.")


class PhotoSaved(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(description="Name this photo in a step's photos.")


def _refused(exc: IncidentError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


@router.get("", response_model=IncidentList)
def list_incidents(
    conn: Conn,
    status: Status | None = Query(None, description="Only this status."),
    grid: str | None = Query(None, max_length=64, description="Only this grid."),
    overdue: bool = Query(False, description="Only incidents past their deadline and not yet resolved."),
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=INT64_MAX),
    principal: Principal = allow("admin", "grid_worker", "police"),
) -> IncidentList:
    """Incidents the caller may see: all (admin), their grids' (grid worker), their sites' (police)."""
    return IncidentList(items=incidents.list_incidents(conn, principal, status, grid, limit, offset, overdue))


class RaisedIncident(IncidentDetail):
    attached: bool = Field(
        description="True: an open incident of the same place and category, updated within the dedup window, took "
        "the alert (answered 200); false: a new incident (201)."
    )


@router.post("", response_model=RaisedIncident, status_code=201)
def raise_from_alert(
    body: FromAlert, request: Request, response: Response, conn: Conn, principal: Principal = allow(*RAISE_ROLES)
) -> RaisedIncident:
    """Raise an incident by hand from an alert, through triage's dedup window; 409 if the alert is
    already on one."""
    try:
        raised = intake.raise_by_hand(
            conn, principal, actor(request, principal), body.alert_id, body.category, body.priority, body.note
        )
        detail = incidents.get(conn, principal, raised.incident_id)
    except IncidentError as exc:
        raise _refused(exc) from None
    if raised.attached:
        response.status_code = 200
    return RaisedIncident(incident=detail.incident, history=detail.history, attached=raised.attached)


def _period(since: datetime | None, until: datetime | None) -> tuple[float, float]:
    end = until.timestamp() if until else time.time()
    return (since.timestamp() if since else end - 30 * 86400), end


@router.get("/figures", response_model=FigureTable)
def incident_figures(
    conn: Conn,
    by: By = Query("grid", description="grid, category, month or all."),
    since: datetime | None = Query(None, description="ISO 8601; default 30 days before until."),
    until: datetime | None = Query(None, description="ISO 8601; default now."),
    principal: Principal = allow("admin", "grid_worker", "police"),
) -> FigureTable:
    """Closure, on-time and rework rates and mean time to close of the incidents due in the period."""
    return figures.figures(conn, principal, by, *_period(since, until))


@router.get("/figures.csv", response_class=PlainTextResponse)
def incident_figures_csv(
    conn: Conn,
    by: By = Query("grid", description="grid, category, month or all."),
    since: datetime | None = Query(None, description="ISO 8601; default 30 days before until."),
    until: datetime | None = Query(None, description="ISO 8601; default now."),
    principal: Principal = allow("admin", "grid_worker", "police"),
) -> PlainTextResponse:
    table = figures.figures(conn, principal, by, *_period(since, until))
    return PlainTextResponse(
        figures.to_csv(table),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="incident-figures-by-{by}.csv"'},
    )


@router.get("/{incident_id}", response_model=IncidentDetail)
def get_incident(
    incident_id: RowId, conn: Conn, principal: Principal = allow("admin", "grid_worker", "police")
) -> IncidentDetail:
    try:
        return incidents.get(conn, principal, incident_id)
    except IncidentError as exc:
        raise _refused(exc) from None


@router.post("/{incident_id}/actions/{action}", response_model=Incident)
def take_step(
    incident_id: RowId,
    action: str,
    body: Step,
    request: Request,
    conn: Conn,
    principal: Principal = allow("admin", "grid_worker", "police"),
) -> Incident:
    """accept, reject, dispatch, start, resolve, verify, rework, close, suspend, resume or note;
    403 for a role that may not take it, 409 from the wrong status."""
    try:
        incidents.get(conn, principal, incident_id)  # 404 before anything else
        incidents.check_photos(request.app.state.data_dir, incident_id, body.photos)
        return incidents.transition(
            conn, principal, actor(request, principal), incident_id, action, body.note, body.photos,
            deadlines=request.app.state.config.incidents,
        )  # fmt: skip
    except IncidentError as exc:
        raise _refused(exc) from None


@router.post("/{incident_id}/photos", response_model=PhotoSaved, status_code=201)
async def upload_photo(
    incident_id: RowId, request: Request, conn: Conn, principal: Principal = allow("admin", "grid_worker")
) -> PhotoSaved:
    """The body is the image itself (image/jpeg or image/png), at most 8 MB."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > incidents.PHOTO_MAX_BYTES:
            raise HTTPException(413, "a photo is at most 8 MB")
    try:
        name = incidents.save_photo(conn, principal, request.app.state.data_dir, incident_id, bytes(data))
    except IncidentError as exc:
        raise _refused(exc) from None
    return PhotoSaved(name=name)


@router.get("/{incident_id}/photos/{name}")
def get_photo(
    incident_id: RowId,
    name: str,
    request: Request,
    conn: Conn,
    principal: Principal = allow("admin", "grid_worker", "police"),
) -> FileResponse:
    try:
        path = incidents.photo_path(conn, principal, request.app.state.data_dir, incident_id, name)
    except IncidentError as exc:
        raise _refused(exc) from None
    return FileResponse(path, media_type="image/jpeg" if name.endswith(".jpg") else "image/png")


@router.get("/{incident_id}/alerts/{alert_id}/snapshot")
def evidence_snapshot(
    incident_id: RowId,
    alert_id: str,
    request: Request,
    conn: Conn,
    principal: Principal = allow("admin", "grid_worker", "police"),
) -> FileResponse:
    """The snapshot of an alert on the incident (audited like any snapshot view)."""
    try:
        path = incidents.evidence_snapshot(conn, principal, request.app.state.data_dir, incident_id, alert_id)
    except IncidentError as exc:
        raise _refused(exc) from None
    audit.record(conn, actor(request, principal), "snapshot.view", alert_id, incident=incident_id)
    return FileResponse(path, media_type="image/jpeg")
