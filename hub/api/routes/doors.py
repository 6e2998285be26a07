"""The door board (dorm managers, for their buildings; admins): each door's state, its alarms and
acknowledging them, stale gate boxes, and the live stream of the board. hub/services/door_board.py."""

from __future__ import annotations

import sqlite3
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import Field

from hub.api.deps import Conn, actor, allow
from hub.api.sse import event_stream
from hub.models import ApiModel, Principal
from hub.services import door_board
from hub.services.door_board import AlarmAckRequest, Door, DoorAlarm, DoorBoard

router = APIRouter(prefix="/api/v1/doors", tags=["doors"])
AlarmId = Annotated[str, Path(min_length=1, max_length=64, description="The door_alarm event's id.")]
Name = Annotated[str, Path(min_length=1, max_length=64)]


class DoorAlarms(ApiModel):
    items: list[DoorAlarm] = Field(description="Unacknowledged (newest first), then acknowledged in the last day.")


def _silent(request: Request) -> float:
    return float(request.app.state.config.web.gate_silent_seconds)


@router.get("/board", response_model=DoorBoard)
def board(request: Request, conn: Conn, principal: Principal = allow("admin", "dorm_manager")) -> DoorBoard:
    """Every door of the caller's buildings with its state, the open alarms and the gate boxes."""
    return door_board.board(conn, principal, _silent(request))


@router.get("/board/stream")
async def board_stream(request: Request, principal: Principal = allow("admin", "dorm_manager")) -> StreamingResponse:
    """Server-sent events: a `board` event (the DoorBoard as JSON) at once, then whenever it changes."""
    silent = _silent(request)

    def poll(conn: sqlite3.Connection, last: str) -> tuple[list[tuple[str, str]], str]:
        now = door_board.board(conn, principal, silent).model_dump_json()
        return ([], last) if now == last else ([("board", now)], now)

    return event_stream(request, poll, "")


@router.get("/alarms", response_model=DoorAlarms)
def alarm_list(conn: Conn, principal: Principal = allow("admin", "dorm_manager")) -> DoorAlarms:
    return DoorAlarms(items=door_board.alarms(conn, principal))


@router.get("/alarms/{alarm_id}", response_model=DoorAlarm)
def alarm(conn: Conn, alarm_id: AlarmId, principal: Principal = allow("admin", "dorm_manager")) -> DoorAlarm:
    found = door_board.alarms(conn, principal, alarm_id=alarm_id)
    if not found:
        raise HTTPException(404, f"no door alarm {alarm_id[:64]!r}")
    return found[0]


@router.post("/alarms/{alarm_id}/ack", response_model=DoorAlarm)
def acknowledge(
    alarm_id: AlarmId,
    body: AlarmAckRequest,
    request: Request,
    conn: Conn,
    principal: Principal = allow("admin", "dorm_manager"),
) -> DoorAlarm:
    """Mark the alarm handled, with a note; audited (`door_alarm.ack`). 409 if it was already."""
    try:
        acked = door_board.acknowledge(conn, actor(request, principal), principal, alarm_id, body.note)
    except door_board.AckRefused as exc:
        raise HTTPException(409, str(exc)) from None
    if acked is None:
        raise HTTPException(404, f"no door alarm {alarm_id[:64]!r}")
    return acked


@router.get("/{site}/{device}/{door}", response_model=Door)
def door(
    site: Name,
    device: Name,
    door: Name,
    request: Request,
    conn: Conn,
    principal: Principal = allow("admin", "dorm_manager"),
) -> Door:
    """One door's state; 404 for a door of a building that is not the caller's, as for none."""
    for building in door_board.doors(conn, principal, _silent(request)):
        for d in building.doors:
            if (d.site, d.device, d.door) == (site, device, door):
                return d
    raise HTTPException(404, f"no door {site[:64]}/{device[:64]}/{door[:64]}")
