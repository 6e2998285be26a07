"""Evidence clips for an incident: pulled through the hub's clip chain (hub/services/clips.py:
custody, signed package, a hold on the box's recording), linked to the incident, and their hold
kept until the incident is closed or rejected (`holding_incident`, checked by holds.release)."""

from __future__ import annotations

import sqlite3
import time

from pydantic import BaseModel, ConfigDict, Field

from hub.models import Principal
from hub.services import audit, clips, incidents
from hub.services.clips import Clip, ClipRequest
from hub.services.incidents import FINAL, IncidentError


class ClipWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start: float | str = Field(description="ISO 8601 or epoch seconds.")
    end: float | str = Field(description="ISO 8601 or epoch seconds; after start.")


def pull_clip(
    conn: sqlite3.Connection, principal: Principal, actor: audit.Actor, incident_id: int, window: ClipWindow
) -> Clip:
    row = incidents.visible_row(conn, principal, incident_id)
    if row["camera"] is None:
        raise IncidentError(f"incident {incident_id} has no camera to pull a clip from", 409)
    body = ClipRequest(
        camera=f"{row['site']}.{row['device']}.{row['camera']}",
        start=window.start,
        end=window.end,
        reason=f"incident #{incident_id}",
    )
    clip = clips.request(conn, principal, actor, body)
    now = time.time()
    conn.execute("INSERT OR IGNORE INTO incident_clips VALUES (?, ?, ?)", (incident_id, clip.id, now))
    incidents.add_history(conn, incident_id, actor, "clip", row["status"], f"clip {clip.id}", now)
    return clip


def holding_incident(conn: sqlite3.Connection, clip_id: str) -> int | None:
    """An open incident the clip is evidence of, if any: its hold must stay."""
    final = ",".join(repr(s) for s in sorted(FINAL))
    row = conn.execute(
        f"SELECT c.incident_id FROM incident_clips c JOIN incidents i ON i.id = c.incident_id "
        f"WHERE c.clip_id = ? AND i.status NOT IN ({final}) LIMIT 1",
        (clip_id,),
    ).fetchone()
    return int(row[0]) if row else None
