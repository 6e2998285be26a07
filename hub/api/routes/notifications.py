"""Notifications to phones: a user's channels (WeCom / DingTalk robots), a test message, arming
schedules per camera, and the page that manages them.

Everyone signed in manages their own channels; an admin may name another user (`?user=`). A
channel of someone else is a 404, as is a camera the caller may not see.
"""

from __future__ import annotations

import sqlite3
import time

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse

from hub.api import pages
from hub.api.deps import Conn, RowId, actor, page_signed_in, signed_in, visible_camera
from hub.models import Principal
from hub.notify import channels
from hub.notify.models import (
    Arming,
    ArmingList,
    ArmingSet,
    Channel,
    ChannelCreate,
    ChannelList,
    ChannelUpdate,
    SendResult,
)
from hub.notify.settings import NotifySettings
from hub.services import accounts, alerts

router = APIRouter(tags=["notifications"])
API = "/api/v1/notifications"
_USER = Query(None, max_length=64, description="Admins: the user whose channels are meant (default: yourself).")


def _settings(request: Request) -> NotifySettings:
    return NotifySettings.of(request.app.state.config.web)


def _owner(conn: sqlite3.Connection, principal: Principal, user: str | None) -> int:
    """The id of the user whose channels are meant: the caller, or for an admin anyone named."""
    if user is None or user == principal.username:
        return principal.user_id
    if principal.role != "admin":
        raise HTTPException(404, f"no user {user[:64]!r}")
    try:
        return accounts.get_user(conn, user).id
    except accounts.AccountError as exc:
        raise HTTPException(404, str(exc)) from None


def _found(channel: Channel | None, channel_id: int) -> Channel:
    if channel is None:
        raise HTTPException(404, f"no channel {channel_id}")
    return channel


@router.get(f"{API}/channels", response_model=ChannelList)
def list_channels(conn: Conn, user: str | None = _USER, principal: Principal = signed_in()) -> ChannelList:
    """The caller's channels (URLs masked, secrets never shown) and how their deliveries go."""
    return ChannelList(items=channels.list_channels(conn, _owner(conn, principal, user)))


@router.post(f"{API}/channels", response_model=Channel, status_code=201)
def add_channel(
    body: ChannelCreate, request: Request, conn: Conn, user: str | None = _USER, principal: Principal = signed_in()
) -> Channel:
    owner = _owner(conn, principal, user)
    try:
        channel_id = channels.add_channel(
            conn, actor(request, principal), owner, body, _settings(request).allowed_hosts
        )
    except channels.ChannelError as exc:
        raise HTTPException(422, str(exc)) from None
    return _found(channels.get_channel(conn, principal, channel_id), channel_id)


@router.get(f"{API}/channels/{{channel_id}}", response_model=Channel)
def get_channel(channel_id: RowId, conn: Conn, principal: Principal = signed_in()) -> Channel:
    return _found(channels.get_channel(conn, principal, channel_id), channel_id)


@router.patch(f"{API}/channels/{{channel_id}}", response_model=Channel)
def update_channel(
    channel_id: RowId, body: ChannelUpdate, request: Request, conn: Conn, principal: Principal = signed_in()
) -> Channel:
    """Rename, pause or resume, or give a new address or secret; what is not given stays."""
    try:
        changed = channels.update_channel(
            conn, actor(request, principal), principal, channel_id, body, _settings(request).allowed_hosts
        )
    except channels.ChannelError as exc:
        raise HTTPException(422, str(exc)) from None
    return _found(changed, channel_id)


@router.delete(f"{API}/channels/{{channel_id}}", status_code=204)
def remove_channel(channel_id: RowId, request: Request, conn: Conn, principal: Principal = signed_in()) -> None:
    if not channels.remove_channel(conn, actor(request, principal), principal, channel_id):
        raise HTTPException(404, f"no channel {channel_id}")


@router.post(f"{API}/channels/{{channel_id}}/test", response_model=SendResult)
def send_test(channel_id: RowId, request: Request, conn: Conn, principal: Principal = signed_in()) -> SendResult:
    """Post a test message now and say whether the robot took it (the outbox is not involved)."""
    result = channels.send_test(conn, actor(request, principal), principal, channel_id, _settings(request))
    if result is None:
        raise HTTPException(404, f"no channel {channel_id}")
    return result


@router.get(f"{API}/arming", response_model=ArmingList)
def list_arming(request: Request, conn: Conn, principal: Principal = signed_in()) -> ArmingList:
    """When the caller is told about each camera they may see."""
    cameras = [c.id for c in alerts.list_cameras(conn, principal)]
    zone = _settings(request).time_zone
    return ArmingList(items=channels.list_arming(conn, principal.user_id, cameras, zone, time.time()))


@router.get(f"{API}/arming/{{camera_id}}", response_model=Arming)
def get_arming(camera_id: str, request: Request, conn: Conn, principal: Principal = signed_in()) -> Arming:
    camera = visible_camera(conn, principal, camera_id)
    return channels.get_arming(conn, principal.user_id, camera.id, _settings(request).time_zone, time.time())


@router.put(f"{API}/arming/{{camera_id}}", response_model=Arming)
def set_arming(
    camera_id: str, body: ArmingSet, request: Request, conn: Conn, principal: Principal = signed_in()
) -> Arming:
    """Alerts of this camera reach the caller's channels only inside these local-time segments."""
    camera = visible_camera(conn, principal, camera_id)
    try:
        return channels.set_arming(
            conn, actor(request, principal), principal.user_id, camera.id, body, _settings(request).time_zone
        )
    except channels.ChannelError as exc:
        raise HTTPException(422, str(exc)) from None


@router.delete(f"{API}/arming/{{camera_id}}", status_code=204)
def clear_arming(camera_id: str, request: Request, conn: Conn, principal: Principal = signed_in()) -> None:
    """Back to the default: every alert of this camera is sent."""
    camera = visible_camera(conn, principal, camera_id)
    channels.clear_arming(conn, actor(request, principal), principal.user_id, camera.id)


@router.get("/notifications", response_class=HTMLResponse, include_in_schema=False)
def notifications_page(request: Request, conn: Conn, principal: Principal = page_signed_in()) -> Response:
    cameras = [c.id for c in alerts.list_cameras(conn, principal)]
    zone = _settings(request).time_zone
    return pages.render(
        request,
        "notifications.html",
        principal,
        channels=channels.list_channels(conn, principal.user_id),
        arming=channels.list_arming(conn, principal.user_id, cameras, zone, time.time()),
        default_zone=zone,
    )
