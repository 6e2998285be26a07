"""Boxes and their health (admins)."""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.deps import Conn, allow
from hub.models import DeviceList, Principal
from hub.services import alerts

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


@router.get("", response_model=DeviceList)
def list_devices(conn: Conn, principal: Principal = allow("admin")) -> DeviceList:
    """Online or offline, last heartbeat, CPU, memory, disk, temperature, outbox depth, rejections."""
    return DeviceList(items=alerts.list_devices(conn))
