"""The alert feed, one alert, its snapshot, and the live stream of new alerts."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, StreamingResponse

from hub.api.deps import Conn, actor, signed_in
from hub.api.sse import event_stream
from hub.models import Alert, AlertPage, Principal
from hub.services import alerts, audit
from hub.services.thumbs import thumbnail

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@router.get("", response_model=AlertPage)
def feed(
    conn: Conn,
    camera: str | None = Query(None, max_length=200, description="Only this camera (site.device.camera)."),
    zone: str | None = Query(None, max_length=64, description="Only alerts in this zone."),
    since: datetime | None = Query(None, description="ISO 8601; only alerts at or after."),
    until: datetime | None = Query(None, description="ISO 8601; only alerts before."),
    before: str | None = Query(None, max_length=64, description="The `next` of the previous page."),
    after: str | None = Query(None, max_length=64, description="The `newest` of an earlier answer."),
    limit: int = Query(30, ge=1, le=alerts.PAGE_MAX),
    principal: Principal = signed_in(),
) -> AlertPage:
    """Alerts of the cameras the caller may see, newest first."""
    try:
        return alerts.feed(conn, principal, camera, zone, _epoch(since), _epoch(until), before, after, limit)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/stream")
async def stream(
    request: Request,
    camera: str | None = Query(None, max_length=200),
    after: str | None = Query(None, max_length=64),
    principal: Principal = signed_in(),
) -> StreamingResponse:
    """Server-sent events: one `alert` event (JSON) per new alert, as the hub stores it."""

    def poll(conn: sqlite3.Connection, cursor: str | None) -> tuple[list[tuple[str, str]], str | None]:
        page = alerts.feed(conn, principal, camera=camera, after=cursor, limit=alerts.PAGE_MAX)
        if cursor is None:  # the stream's start: only what comes from now on
            return [], page.newest or "0:0"
        return [("alert", item.model_dump_json()) for item in reversed(page.items)], page.newest or cursor

    return event_stream(request, poll, after)


@router.get("/{alert_id}", response_model=Alert)
def get_alert(alert_id: str, conn: Conn, principal: Principal = signed_in()) -> Alert:
    alert = alerts.get_alert(conn, principal, alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id[:40]!r}")
    return alert


@router.get("/{alert_id}/snapshot", response_class=FileResponse)
def snapshot(
    alert_id: str,
    request: Request,
    conn: Conn,
    size: Literal["full", "thumb"] = Query("full", description="thumb: 320 px wide, for lists."),
    principal: Principal = signed_in(),
) -> FileResponse:
    """The alert's JPEG. Every view is in the audit log."""
    path = alerts.snapshot_file(conn, request.app.state.data_dir, principal, alert_id)
    if path is None:
        raise HTTPException(404, f"no snapshot for alert {alert_id[:40]!r}")
    if size == "thumb":
        try:
            path = thumbnail(path)
        except (OSError, ValueError) as exc:
            raise HTTPException(404, f"the snapshot of alert {alert_id[:40]!r} cannot be read: {exc}") from None
    audit.record(conn, actor(request, principal), "snapshot.view", alert_id, size=size)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
