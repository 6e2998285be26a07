"""Cameras the caller may see."""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.deps import Conn, signed_in, visible_camera
from hub.models import Camera, CameraList, Principal
from hub.services import alerts

router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"])


@router.get("", response_model=CameraList)
def list_cameras(conn: Conn, principal: Principal = signed_in()) -> CameraList:
    """Every camera the caller may see: all for admins, the sites' for police, their own for shop owners."""
    return CameraList(items=alerts.list_cameras(conn, principal))


@router.get("/{camera_id}", response_model=Camera)
def get_camera(camera_id: str, conn: Conn, principal: Principal = signed_in()) -> Camera:
    """404 for a camera the caller may not see, the same as for one that does not exist."""
    return visible_camera(conn, principal, camera_id)
