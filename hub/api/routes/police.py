"""Police escalation: the steps (escalate by the centre; acknowledge, dispatch, on scene, done by
the site's police), the console's live stream (SSE, resumable with Last-Event-ID) and its page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from hub.api.deps import Conn, RowId, actor, allow, page_allow
from hub.api.pages import render
from hub.models import Principal
from hub.services import incident_evidence, police
from hub.services.clips import Clip, ClipRefused
from hub.services.incident_evidence import ClipWindow
from hub.services.incidents import Incident, IncidentError
from hub.store import connect

router = APIRouter(tags=["police"])
POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


class PoliceNote(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    note: str = Field("", max_length=2000, description="E.g. the officers sent, the case number.")


@router.post("/api/v1/incidents/{incident_id}/police/{step}", response_model=Incident)
def police_step(
    incident_id: RowId,
    step: str,
    body: PoliceNote,
    request: Request,
    conn: Conn,
    principal: Principal = allow("admin", "police"),
) -> Incident:
    """escalate (admin); acknowledge, dispatch, on_scene, done (the site's police). Audited."""
    try:
        return police.step(conn, principal, actor(request, principal), incident_id, step, body.note)
    except IncidentError as exc:
        raise HTTPException(exc.status, str(exc)) from None


@router.post("/api/v1/incidents/{incident_id}/clips", response_model=Clip, status_code=202)
def pull_clip(
    incident_id: RowId,
    body: ClipWindow,
    request: Request,
    conn: Conn,
    principal: Principal = allow("admin", "police"),
) -> Clip:
    """Pull an evidence clip of the incident's camera (the clip chain of custody); its hold on the
    box stays until the incident is closed."""
    try:
        return incident_evidence.pull_clip(conn, principal, actor(request, principal), incident_id, body)
    except IncidentError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    except ClipRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None


@router.get("/api/v1/police/stream")
async def police_stream(request: Request, principal: Principal = allow("admin", "police")) -> StreamingResponse:
    """Server-sent events: one `incident` event per police step on an incident the caller may see;
    the event id is the history row, so a reconnecting EventSource resumes where it left off."""
    conn = connect(request.app.state.db_path)
    last = request.headers.get("last-event-id", "")
    start = int(last) if last.isdigit() else await run_in_threadpool(police.cursor, conn)

    async def events() -> AsyncIterator[str]:
        cursor, idle = start, 0.0
        try:
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                changes = await run_in_threadpool(police.changes_since, conn, principal, cursor)
                for event_id, item in changes:
                    yield f"id: {event_id}\nevent: incident\ndata: {item.model_dump_json()}\n\n"
                    cursor = event_id
                idle = 0.0 if changes else idle + POLL_SECONDS
                if idle >= KEEPALIVE_SECONDS:
                    yield ": keepalive\n\n"
                    idle = 0.0
                await asyncio.sleep(POLL_SECONDS)
        finally:
            conn.close()

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


@router.get("/police", response_class=HTMLResponse, include_in_schema=False)
def police_console(request: Request, conn: Conn, principal: Principal = page_allow("admin", "police")) -> Response:
    return render(request, "police.html", principal, active="police_console", items=police.escalated(conn, principal))
