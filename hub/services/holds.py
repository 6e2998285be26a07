"""Releasing an evidence clip's legal hold: explicit, by an admin, with a reason, audited.

The hold is on the box (the clip's window of recording is kept past its 7 days). The admin's
request is recorded in the clip's chain of custody and the audit log, and a `release_hold`
command (contract/holds.py) is queued for the box like a clip request: it is delivered when the
box is online and kept until it replies, and the box's answer goes into the custody too. The hub
keeps the clip itself: its copy is the evidence; the hold only kept the box's recording.
"""

from __future__ import annotations

import json
import sqlite3
import time

from pydantic import BaseModel, ConfigDict, Field

from contract.holds import RELEASE_HOLD_COMMAND, ReleaseHoldRequest
from contract.messages import Command
from hub.models import Principal
from hub.services import audit, clips, incident_evidence
from hub.services.audit import Actor
from hub.services.clips import ClipRefused
from hub.store import transaction

REQUESTED = "hold release requested"
RELEASED = "hold released"


class ReleaseHold(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=3, max_length=500, description="Why the hold may go (case closed, court order...).")


class HoldRelease(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    clip: str = Field(description="The clip's id.")
    state: str = Field(description="'hold release requested' until the box confirms, then 'hold released'.")
    reason: str = Field(description="The admin's reason.")
    requested_by: str = Field(description="The admin who released it.")
    requested: float = Field(description="When, epoch seconds UTC.")


def _command_id(clip_id: str) -> str:
    return f"release-{clip_id}"  # one per clip: asking again is refused, not sent twice


def release(
    conn: sqlite3.Connection, principal: Principal, actor: Actor, clip_id: str, body: ReleaseHold
) -> HoldRelease:
    """Queue the release of `clip_id`'s hold (the route lets only admins call this). 404 for an
    unknown clip, 409 if its release was already asked."""
    clip = clips.get(conn, principal, clip_id)
    if clip is None:
        raise ClipRefused(404, f"no clip {clip_id[:64]!r}")
    holder = incident_evidence.holding_incident(conn, clip.id)
    if holder is not None:
        raise ClipRefused(409, f"clip {clip.id} is evidence of incident {holder}: its hold stays until it is closed")
    command_id = _command_id(clip.id)
    if conn.execute("SELECT 1 FROM commands WHERE id = ?", (command_id,)).fetchone() is not None:
        raise ClipRefused(409, f"the hold of clip {clip.id} has already been released")
    site, device, camera = clip.camera.split(".", 2)
    now = time.time()
    args = ReleaseHoldRequest(clip=clip.id, camera=camera).model_dump()
    command = Command(id=command_id, time=now, args=args)
    with transaction(conn):
        conn.execute(
            "INSERT INTO commands (id, site, device, name, payload, created) VALUES (?, ?, ?, ?, ?, ?)",
            (command_id, site, device, RELEASE_HOLD_COMMAND, command.model_dump_json(), now),
        )
        clips.add_custody(conn, clip.id, actor, REQUESTED, now, reason=body.reason)
        audit.record(conn, actor, "clip.hold_release", clip.id, camera=clip.camera, reason=body.reason)
    return HoldRelease(clip=clip.id, state=REQUESTED, reason=body.reason, requested_by=actor.name, requested=now)


def box_answered(conn: sqlite3.Connection, command_id: str, ok: bool, result: str | None, error: str | None) -> None:
    """The box's reply to a release (called by the command sender, inside its transaction)."""
    clip_id = command_id.removeprefix("release-")
    row = conn.execute("SELECT site, device FROM clips WHERE id = ?", (clip_id,)).fetchone()
    if row is None:
        return
    box = Actor(f"device:{row['site']}/{row['device']}", "device", None)
    released = json.loads(result).get("released", 0) if ok and result else 0
    clips.add_custody(
        conn, clip_id, box, RELEASED if ok else "hold release failed", time.time(), released=released, error=error
    )
