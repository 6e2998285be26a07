"""Playback and evidence clip pages: a camera's 7-day timeline with its player, and the clips page
(ask for a clip with a reason, follow its progress, download the signed package; admins release
holds). Rendered here; the data comes from /api/v1/cameras/{id}/timeline, the media channel and
/api/v1/clips (hub/web/static/playback.js, clips.js)."""

from __future__ import annotations

import math

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from hub.api.deps import Conn, page_signed_in
from hub.api.pages import error_page, render
from hub.models import Principal
from hub.services import alerts

router = APIRouter(include_in_schema=False)


@router.get("/cameras/{camera_id}/playback", response_class=HTMLResponse)
def playback_page(
    camera_id: str,
    request: Request,
    conn: Conn,
    t: float | None = Query(None, description="Play from this time (epoch seconds): 'playback around an alert'."),
    principal: Principal = page_signed_in(),
) -> Response:
    camera = alerts.get_camera(conn, principal, camera_id)
    if camera is None:
        return error_page(request, 404, "no such camera")
    start = t if t is not None and math.isfinite(t) else None
    return render(request, "playback.html", principal, camera=camera, start=start)


@router.get("/clips", response_class=HTMLResponse)
def clips_page(
    request: Request,
    conn: Conn,
    camera: str | None = Query(None, max_length=200),
    principal: Principal = page_signed_in(),
) -> Response:
    return render(request, "clips.html", principal, cameras=alerts.list_cameras(conn, principal), camera=camera or "")
