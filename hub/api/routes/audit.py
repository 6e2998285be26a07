"""The audit log (admins): search, CSV export, chain verification."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from hub.api.deps import Conn, actor, allow
from hub.models import AuditPage, Principal
from hub.services import audit

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@router.get("", response_model=AuditPage)
def search(
    conn: Conn,
    who: str | None = Query(None, max_length=64, description="Only this actor."),
    action: str | None = Query(None, max_length=64, description="Only this action, e.g. login.failed."),
    target: str | None = Query(None, max_length=200, description="Only this target (camera, alert, user)."),
    since: datetime | None = Query(None),
    until: datetime | None = Query(None),
    before: int | None = Query(None, ge=1, le=2**63 - 1, description="The `next` of the previous page."),
    limit: int = Query(50, ge=1, le=audit.PAGE_MAX),
    principal: Principal = allow("admin"),
) -> AuditPage:
    return audit.search(conn, who, action, target, _epoch(since), _epoch(until), before, limit)


@router.get("/export.csv")
def export(
    request: Request,
    conn: Conn,
    who: str | None = Query(None, max_length=64),
    action: str | None = Query(None, max_length=64),
    target: str | None = Query(None, max_length=200),
    since: datetime | None = Query(None),
    until: datetime | None = Query(None),
    principal: Principal = allow("admin"),
) -> Response:
    text = audit.export_csv(conn, who, action, target, _epoch(since), _epoch(until))
    audit.record(conn, actor(request, principal), "audit.export")
    headers = {"Content-Disposition": 'attachment; filename="diaolou-audit.csv"'}
    return Response("\ufeff" + text, media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/verify")
def verify(conn: Conn, principal: Principal = allow("admin")) -> dict[str, object]:
    """Walk the hash chain: the first row that was altered or removed, if any."""
    result = audit.verify(conn)
    return {
        "rows": result.rows,
        "intact": result.first_bad is None,
        "first_bad": result.first_bad,
        "problem": result.problem,
    }
