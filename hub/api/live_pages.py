"""The live view page: /cameras/{id}/live (sub stream; ?stream=main for the main one).

The page only renders the player; the video comes over the camera's live WebSocket
(hub/api/routes/media.py, which checks again who may watch and writes the audit entry), played by
hub/web/static/live.js through Media Source Extensions, or as refreshed JPEGs without them.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from hub.api.deps import Conn, page_signed_in
from hub.api.pages import error_page, render
from hub.models import Principal
from hub.services import alerts

router = APIRouter(include_in_schema=False)


@router.get("/cameras/{camera_id}/live", response_class=HTMLResponse)
def live_page(
    camera_id: str,
    request: Request,
    conn: Conn,
    stream: Literal["sub", "main"] = Query("sub"),
    principal: Principal = page_signed_in(),
) -> Response:
    """404 for a camera the caller may not see, as for one that does not exist."""
    camera = alerts.get_camera(conn, principal, camera_id)
    if camera is None:
        return error_page(request, 404, "no such camera")
    return render(request, "live.html", principal, camera=camera, stream=stream)
