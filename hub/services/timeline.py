"""A camera's timeline for the phone: what its box recorded (spans, gaps and why, motion), asked
of the box a day at a time with the `timeline` command (contract/timeline.py), plus the person
events hub.db holds for that camera.

The box is asked only while it is online, and its answers are awaited for a few seconds: a
timeline is for someone looking at a phone now, so a command to an offline box is not queued for
later (it carries `expires`). Without the box the timeline still shows the events, and says why
the recordings are missing (`recording_error`).
"""

from __future__ import annotations

import json
import sqlite3
import time

from pydantic import BaseModel, ConfigDict, Field

from contract.messages import Command
from contract.timeline import TIMELINE_COMMAND, TimelineGap, TimelineRequest, TimelineResult, TimeRange
from hub import commands_out
from hub.models import Principal, split_camera_id
from hub.services import alerts
from hub.services.clips import ClipRefused, new_id, parse_time
from hub.store import transaction

DAY_SECONDS = 86_400.0
RING_DAYS = 7  # the boxes keep 7 days: a window may reach one day further for clock and zone slack
MAX_WINDOW_SECONDS = RING_DAYS * DAY_SECONDS
ANSWER_SECONDS = 8.0  # how long to wait for the box's replies
COMMAND_TTL_SECONDS = 15.0
MAX_EVENTS = 2000


class PersonEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="The event id (its alert's id).")
    start: float = Field(description="When the person was first seen, epoch seconds UTC.")
    end: float | None = Field(description="When the person was last seen, if the event has ended.")


class CameraTimeline(BaseModel):
    """One camera's timeline in a window (at most 7 days)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera: str = Field(description="site.device.camera")
    start: float = Field(description="The window asked, epoch seconds UTC.")
    end: float = Field(description="The window asked, epoch seconds UTC.")
    recording_known: bool = Field(description="The box answered: spans, gaps and motion are its index's.")
    recording_error: str | None = Field(description="Why spans and gaps are unknown (box offline, no answer).")
    spans: list[TimeRange] = Field(description="Recorded video, oldest first.")
    gaps: list[TimelineGap] = Field(description="Where there is no video, and why.")
    motion: list[TimeRange] = Field(description="Recorded stretches in which the box saw motion.")
    persons: list[PersonEvent] = Field(description="Person events in the window, from hub.db (at most 2000).")
    merged_under: float = Field(description="The box merged spans closer than this many seconds to fit (0: none).")


def _time(value: str, name: str) -> float:
    """A query parameter: epoch seconds or ISO 8601."""
    try:
        return parse_time(float(value), name)
    except ValueError:
        return parse_time(value, name)


def _days(start: float, end: float) -> list[tuple[float, float]]:
    out, cursor = [], start
    while cursor < end:
        out.append((cursor, min(end, cursor + DAY_SECONDS)))
        cursor += DAY_SECONDS
    return out


def _persons(
    conn: sqlite3.Connection, site: str, device: str, camera: str, start: float, end: float
) -> list[PersonEvent]:
    # Through idx_events_camera_feed (the rows that start an event); the end phase gives `end`.
    rows = conn.execute(
        "SELECT e.id, e.time, (SELECT max(x.time) FROM events x WHERE x.id = e.id AND x.phase = 'end') AS ended "
        "FROM events e WHERE e.site = ? AND e.device = ? AND e.camera = ? AND e.time >= ? AND e.time < ? "
        "AND e.phase IN ('new', 'instant') AND e.kind = 'person' AND e.test = 0 ORDER BY e.time LIMIT ?",
        (site, device, camera, start, end, MAX_EVENTS),
    ).fetchall()
    return [PersonEvent(id=r["id"], start=r["time"], end=r["ended"]) for r in rows]


def _ask(conn: sqlite3.Connection, site: str, device: str, camera: str, start: float, end: float) -> list[str]:
    now = time.time()
    ids = []
    with transaction(conn):
        for day_start, day_end in _days(start, end):
            command_id = new_id(now)
            args = TimelineRequest(camera=camera, start=day_start, end=day_end).model_dump(mode="json")
            command = Command(id=command_id, time=now, expires=now + COMMAND_TTL_SECONDS, args=args)
            conn.execute(
                "INSERT INTO commands (id, site, device, name, payload, created) VALUES (?, ?, ?, ?, ?, ?)",
                (command_id, site, device, TIMELINE_COMMAND, command.model_dump_json(), now),
            )
            ids.append(command_id)
    commands_out.wake()
    return ids


def _await(conn: sqlite3.Connection, site: str, device: str, ids: list[str], wait: float) -> list[sqlite3.Row]:
    deadline = time.monotonic() + wait
    marks = ",".join("?" * len(ids))
    while True:
        rows = conn.execute(
            f"SELECT id, ok, result, error FROM replies WHERE site = ? AND device = ? AND id IN ({marks})",
            (site, device, *ids),
        ).fetchall()
        if len(rows) == len(ids) or time.monotonic() >= deadline:
            return rows
        time.sleep(0.05)


def camera_timeline(
    conn: sqlite3.Connection,
    principal: Principal,
    camera_id: str,
    start: str,
    end: str,
    wait: float = ANSWER_SECONDS,
) -> CameraTimeline:
    """404 for a camera the caller may not see; 422 for a window that is not one (end not after
    start, longer than 7 days)."""
    camera = alerts.get_camera(conn, principal, camera_id)
    if camera is None:
        raise ClipRefused(404, f"no camera {camera_id[:80]!r}")
    t0, t1 = _time(start, "start"), _time(end, "end")
    if t1 <= t0:
        raise ClipRefused(422, "the window's end must be after its start")
    if t1 - t0 > MAX_WINDOW_SECONDS:
        raise ClipRefused(422, f"a timeline covers at most {RING_DAYS} days (the boxes keep no more)")
    split = split_camera_id(camera_id)
    assert split is not None  # get_camera found it
    site, device, name = split
    persons = _persons(conn, site, device, name, t0, t1)
    state = conn.execute("SELECT state FROM devices WHERE site = ? AND device = ?", (site, device)).fetchone()
    empty = CameraTimeline(
        camera=camera_id,
        start=t0,
        end=t1,
        recording_known=False,
        recording_error=None,
        spans=[],
        gaps=[],
        motion=[],
        persons=persons,
        merged_under=0.0,
    )
    if state is None or state["state"] != "online":
        return empty.model_copy(
            update={"recording_error": f"box {device} is offline: its recordings cannot be listed now"}
        )
    ids = _ask(conn, site, device, name, t0, t1)
    replies = {r["id"]: r for r in _await(conn, site, device, ids, wait)}
    spans: list[TimeRange] = []
    gaps: list[TimelineGap] = []
    motion: list[TimeRange] = []
    merged = 0.0
    for command_id in ids:
        row = replies.get(command_id)
        if row is None:
            return empty.model_copy(update={"recording_error": f"box {device} did not answer within {wait:g} s"})
        if not row["ok"]:
            return empty.model_copy(update={"recording_error": f"box {device}: {row['error']}"})
        day = TimelineResult.model_validate(json.loads(row["result"]))
        spans, gaps, motion = _join(spans, day.spans), [*gaps, *day.gaps], _join(motion, day.motion)
        merged = max(merged, day.merged_under)
    return empty.model_copy(
        update={
            "recording_known": True,
            "spans": spans,
            "gaps": _join_gaps(gaps),
            "motion": motion,
            "merged_under": merged,
        }
    )


def _join(ranges: list[TimeRange], more: list[TimeRange]) -> list[TimeRange]:
    """Days are asked separately: a span running over midnight comes back as two; make it one."""
    out = list(ranges)
    for r in more:
        if out and r.start - out[-1].end <= 1.0:
            out[-1] = TimeRange(start=out[-1].start, end=max(out[-1].end, r.end))
        else:
            out.append(r)
    return out


def _join_gaps(gaps: list[TimelineGap]) -> list[TimelineGap]:
    out: list[TimelineGap] = []
    for g in gaps:
        last = out[-1] if out else None
        if last is not None and last.reason == g.reason == "no recording" and g.start - last.end <= 1.0:
            out[-1] = last.model_copy(update={"end": max(last.end, g.end)})
        else:
            out.append(g)
    return out
