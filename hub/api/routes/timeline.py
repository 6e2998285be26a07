"""A camera's 7-day timeline for the phone: GET /api/v1/cameras/{camera_id}/timeline."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query

from hub.api.deps import Conn, signed_in
from hub.models import Principal
from hub.services import timeline
from hub.services.clips import ClipRefused
from hub.services.timeline import CameraTimeline

router = APIRouter(tags=["playback"])


@router.get("/api/v1/cameras/{camera_id}/timeline", response_model=CameraTimeline)
def camera_timeline(
    camera_id: str,
    conn: Conn,
    start: str = Query(max_length=40, description="Epoch seconds or ISO 8601 (UTC if no offset)."),
    end: str = Query(max_length=40, description="Epoch seconds or ISO 8601; after start, at most 7 days later."),
    principal: Principal = signed_in(),
) -> CameraTimeline:
    """Recorded spans, gaps (and why) and motion from the camera's box, asked a day at a time,
    with the person events the hub holds. 404 for a camera the caller may not see. With the box
    offline or silent the events still come, and `recording_error` says why the rest is missing."""
    try:
        return timeline.camera_timeline(conn, principal, camera_id, start, end)
    except ClipRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
