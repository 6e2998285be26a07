"""Residents and their cards (dorm managers, for their buildings; admins): list, issue, replace a
lost card, suspend, return, revoke, import a CSV; the access log and its door-camera pictures.
The same service as `diaolou-hub cards`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response

from common.residents_csv import MAX_FILE_BYTES, ResidentsCsvError
from hub import access_sync
from hub.api.deps import Conn, RowId, actor, allow
from hub.models import (
    AccessLog,
    Card,
    CardIssue,
    CardReplace,
    CardStateChange,
    GateListStates,
    ImportReport,
    Principal,
    ResidentList,
)
from hub.services import access_log, audit, cards
from hub.services.thumbs import thumbnail

router = APIRouter(prefix="/api/v1/cards", tags=["cards"])


def _refused(exc: cards.CardError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


@router.get("/residents", response_model=ResidentList)
def list_residents(
    conn: Conn,
    building: str | None = Query(None, max_length=64, description="Only this building."),
    q: str | None = Query(None, max_length=100, description="Employee number or name contains this, or the room."),
    principal: Principal = allow("admin", "dorm_manager"),
) -> ResidentList:
    return ResidentList(items=cards.residents(conn, principal, building or None, q or None))


@router.get("/gates", response_model=GateListStates)
def gate_lists(conn: Conn, principal: Principal = allow("admin", "dorm_manager")) -> GateListStates:
    """The gate boxes of the caller's buildings and whether each holds the newest list (`stale`)."""
    return GateListStates(items=cards.gate_lists(conn, principal))


@router.get("/access-log", response_model=AccessLog)
def access_log_search(
    conn: Conn,
    building: str | None = Query(None, max_length=64, description="Only this building."),
    employee_no: str | None = Query(None, max_length=100, description="Only this resident."),
    since: datetime | None = Query(None),
    until: datetime | None = Query(None),
    limit: int = Query(100, ge=1, le=access_log.PAGE_MAX),
    principal: Principal = allow("admin", "dorm_manager"),
) -> AccessLog:
    """Gate decisions and door alarms of the caller's buildings, newest first."""
    return AccessLog(
        items=access_log.recent(
            conn, principal, building or None, limit, employee_no or None, _epoch(since), _epoch(until)
        )
    )


@router.get("/access-log.csv")
def access_log_export(
    request: Request,
    conn: Conn,
    building: str | None = Query(None, max_length=64),
    employee_no: str | None = Query(None, max_length=100),
    since: datetime | None = Query(None),
    until: datetime | None = Query(None),
    principal: Principal = allow("admin", "dorm_manager"),
) -> Response:
    """The same search as CSV (at most 100,000 rows), audited: it carries residents' names."""
    records = access_log.recent(
        conn,
        principal,
        building or None,
        access_log.EXPORT_MAX,
        employee_no or None,
        _epoch(since),
        _epoch(until),
        limit_max=access_log.EXPORT_MAX,
    )
    audit.record(conn, actor(request, principal), "access.export", building, rows=len(records))
    headers = {"Content-Disposition": 'attachment; filename="diaolou-access-log.csv"'}
    return Response("\ufeff" + access_log.export_csv(records), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/access-log/{event_id}/snapshot", response_class=FileResponse)
def access_snapshot(
    event_id: str,
    request: Request,
    conn: Conn,
    size: Literal["full", "thumb"] = Query("full", description="thumb: 320 px wide, for lists."),
    principal: Principal = allow("admin", "dorm_manager"),
) -> FileResponse:
    """The door camera's picture of a decision or door alarm (who swiped), for the caller's buildings;
    404 for any other. Every view is in the audit log, as for alert snapshots."""
    path = access_log.snapshot_file(conn, request.app.state.data_dir, principal, event_id)
    if path is None:
        raise HTTPException(404, f"no picture for access record {event_id[:40]!r}")
    if size == "thumb":
        try:
            path = thumbnail(path)
        except (OSError, ValueError) as exc:
            raise HTTPException(404, f"the picture of access record {event_id[:40]!r} cannot be read: {exc}") from None
    audit.record(conn, actor(request, principal), "snapshot.view", event_id, size=size, access=True)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@router.post("", response_model=Card, status_code=201)
def issue(body: CardIssue, request: Request, conn: Conn, principal: Principal = allow("admin", "dorm_manager")) -> Card:
    try:
        issued = cards.issue(conn, actor(request, principal), principal, body)
    except cards.CardError as exc:
        raise _refused(exc) from None
    access_sync.wake()
    return issued


@router.post("/{card_id}/replace", response_model=Card, status_code=201)
def replace(
    card_id: RowId,
    body: CardReplace,
    request: Request,
    conn: Conn,
    principal: Principal = allow("admin", "dorm_manager"),
) -> Card:
    try:
        new = cards.replace(conn, actor(request, principal), principal, card_id, body.card_number, body.card_format)
    except cards.CardError as exc:
        raise _refused(exc) from None
    access_sync.wake()
    return new


@router.post("/{card_id}/state", response_model=Card)
def set_state(
    card_id: RowId,
    body: CardStateChange,
    request: Request,
    conn: Conn,
    principal: Principal = allow("admin", "dorm_manager"),
) -> Card:
    try:
        changed = cards.set_state(conn, actor(request, principal), principal, card_id, body.state)
    except cards.CardError as exc:
        raise _refused(exc) from None
    access_sync.wake()  # a revocation leaves now, not at the next tick
    return changed


@router.post("/import", response_model=ImportReport)
async def import_csv(
    request: Request,
    conn: Conn,
    filename: str = Query("upload.csv", max_length=100, description="The file's name, for the errors and the audit."),
    principal: Principal = allow("admin", "dorm_manager"),
) -> ImportReport:
    """A residents CSV as the request body (text/csv): all rows or none; a 422 lists every bad row."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_FILE_BYTES:
            raise HTTPException(413, f"the file is larger than {MAX_FILE_BYTES} bytes")
    try:
        report = cards.import_csv(
            conn, actor(request, principal), principal, bytes(data), filename, request.app.state.config.web.time_zone
        )
    except ResidentsCsvError as exc:
        raise HTTPException(422, str(exc)) from None
    except cards.CardError as exc:
        raise _refused(exc) from None
    access_sync.wake()
    return report
