"""The media channel's WebSockets (contract/media.py).

- `/api/v1/cameras/{camera_id}/live?stream=sub|main&format=fmp4|jpeg`: a person watches a camera
  live. Closed with 4404 for a camera the caller may not see (as for one that does not exist). Text messages are
  `LiveStatus` JSON (waiting, playing, ended, failed, offline); binary ones fragmented MP4 for
  Media Source Extensions, the init segment first (format=jpeg: one JPEG each, for browsers
  without MSE). Every view is in the audit log.
- MEDIA_AGENT_PATH: the box dials it with its device token after a `media` command; refused at the
  handshake (403) for a wrong token, another device's session or an unknown one.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from functools import partial
from pathlib import Path

from fastapi import APIRouter, Query, WebSocket, WebSocketException
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from contract.media import MEDIA_AGENT_PATH, MediaFormat, StreamName
from contract.messages import TIME_MAX, TIME_MIN
from hub.api.deps import socket_device, socket_signed_in
from hub.media.sessions import LiveStatus, MediaHub, StreamKey, Viewer
from hub.models import Principal, split_camera_id
from hub.services import alerts, audit
from hub.services.audit import Actor
from hub.services.clips import DeviceCaller
from hub.store import connect

router = APIRouter(tags=["media"])
VIEWER = socket_signed_in()
DEVICE = socket_device()
NOT_VISIBLE = 4404  # a private close code: the page shows "no such camera"


def _address(websocket: WebSocket) -> str:
    return websocket.client.host if websocket.client is not None else "?"


def _check_and_audit(
    db_path: Path, principal: Principal, address: str, camera_id: str, action: str, **detail: object
) -> bool:
    conn = connect(db_path)
    try:
        if alerts.get_camera(conn, principal, camera_id) is None:
            return False
        audit.record(conn, Actor.of(principal, address), action, camera_id, **detail)
        return True
    finally:
        conn.close()


@router.websocket("/api/v1/cameras/{camera_id}/live")
async def watch_live(
    websocket: WebSocket,
    camera_id: str,
    stream: StreamName = Query("sub"),
    format: MediaFormat = Query("fmp4"),
    principal: Principal = VIEWER,
) -> None:
    app_state = websocket.app.state
    visible = await run_in_threadpool(
        partial(_check_and_audit, stream=stream),
        app_state.db_path,
        principal,
        _address(websocket),
        camera_id,
        "live.view",
    )
    split = split_camera_id(camera_id)
    await websocket.accept()
    if not visible or split is None:
        await websocket.close(NOT_VISIBLE, "no such camera")
        return
    await _watch(websocket, StreamKey(*split, stream, format))


@router.websocket("/api/v1/cameras/{camera_id}/playback")
async def watch_playback(
    websocket: WebSocket,
    camera_id: str,
    start: float = Query(ge=TIME_MIN, le=TIME_MAX, description="Play from the keyframe at or before this time."),
    speed: int = Query(1, ge=1, le=4, description="1, 2 or 4 times real time."),
    principal: Principal = VIEWER,
) -> None:
    """A person plays back a camera's recording from `start` (messages as for live; the first
    `playing` status carries the recorded time of the first frame). Its own session per viewer;
    closed with 4404 for a camera the caller may not see. Every playback is in the audit log."""
    app_state = websocket.app.state
    visible = await run_in_threadpool(
        partial(_check_and_audit, start=start, speed=speed),
        app_state.db_path,
        principal,
        _address(websocket),
        camera_id,
        "playback.view",
    )
    split = split_camera_id(camera_id)
    await websocket.accept()
    if not visible or split is None:
        await websocket.close(NOT_VISIBLE, "no such camera")
        return
    if speed not in (1, 2, 4):
        await websocket.close(1008, "speed must be 1, 2 or 4")
        return
    key = StreamKey(*split, "sub", kind="playback", start=start, speed=speed, private=secrets.token_hex(8))
    await _watch(websocket, key)


async def _watch(websocket: WebSocket, key: StreamKey) -> None:
    hub: MediaHub = websocket.app.state.media
    viewer = await hub.join(key)
    sender = asyncio.get_running_loop().create_task(_send(websocket, viewer))
    try:
        while True:  # the browser sends nothing; this notices it leaving
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        hub.leave(viewer)


async def _send(websocket: WebSocket, viewer: Viewer) -> None:
    with contextlib.suppress(Exception):  # the socket closed under us: the receiver notices too
        while True:
            item = await viewer.next()
            if isinstance(item, LiveStatus):
                await websocket.send_text(item.model_dump_json())
                if item.state in ("ended", "failed", "offline"):
                    await websocket.close(1000)
                    return
            else:
                await websocket.send_bytes(item)


@router.websocket(MEDIA_AGENT_PATH)
async def agent_stream(websocket: WebSocket, session: str, caller: DeviceCaller = DEVICE) -> None:
    hub: MediaHub = websocket.app.state.media
    upstream = hub.claim(session, caller.site, caller.device)
    if upstream is None:
        raise WebSocketException(1008, "no such media session for this device")
    await websocket.accept()
    await hub.serve(upstream, websocket)
