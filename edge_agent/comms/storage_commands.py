"""The box's answers to the hub's commands about its ring buffer. `timeline` (contract/timeline.py):
recorded spans, gaps (with why) and motion of one camera in a window of at most a day, from the
index. `release_hold` (contract/holds.py): an admin released an evidence clip's legal hold.

A reply is one MQTT message, so when a day is too fragmented to list (a camera that drops out
every few seconds) spans closer than a tolerance are merged, doubling it until every list fits;
the result says by how much (`merged_under`), so the phone can show "about" rather than lie.
"""

from __future__ import annotations

from collections.abc import Sequence

from contract.holds import ReleaseHoldRequest, ReleaseHoldResult, clip_hold_reason
from contract.messages import Command, Reply
from contract.timeline import (
    MAX_TIMELINE_ITEMS,
    MAX_TIMELINE_WINDOW_SECONDS,
    TimelineGap,
    TimelineRequest,
    TimelineResult,
    TimeRange,
)
from edge_agent.record.index import SegmentIndex
from edge_agent.record.timeline import DAMAGED, JOIN_TOLERANCE_S, NO_RECORDING, build_timeline

MOTION_SHARE = 0.02  # a segment with motion in at least this share of its analysed frames is marked


def _merge(ranges: Sequence[tuple[float, float]], tolerance: float) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in ranges:
        if merged and start - merged[-1][1] <= tolerance:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _fit(ranges: list[tuple[float, float]], tolerance: float) -> tuple[list[tuple[float, float]], float]:
    """Merge until at most MAX_TIMELINE_ITEMS remain; returns them and the tolerance used."""
    while len(ranges) > MAX_TIMELINE_ITEMS:
        tolerance *= 2
        ranges = _merge(ranges, tolerance)
    return ranges, tolerance


def timeline_result(index: SegmentIndex, request: TimelineRequest) -> TimelineResult:
    start, end = request.start, request.end
    segments = index.segments(request.camera, start, end)
    timeline = build_timeline(request.camera, segments, start, end)
    spans, tolerance = _fit([(s.start, s.end) for s in timeline.spans], JOIN_TOLERANCE_S)
    motion_ranges = [
        (max(s.start, start), min(s.end, end))
        for s in segments
        if s.damage is None and s.motion is not None and s.motion >= MOTION_SHARE
    ]
    motion, motion_tolerance = _fit(_merge(motion_ranges, JOIN_TOLERANCE_S), JOIN_TOLERANCE_S)
    # Gaps are what the (merged) spans and the damaged segments leave uncovered.
    damaged = [
        TimelineGap(start=g.start, end=g.end, reason=DAMAGED, problem=(g.problem or "")[:300])
        for g in timeline.gaps
        if g.reason == DAMAGED
    ]
    covered = sorted([*spans, *((g.start, g.end) for g in damaged)])
    gaps: list[TimelineGap] = []
    cursor = start
    for s, e in [*covered, (end, end)]:
        if s - cursor > JOIN_TOLERANCE_S:
            gaps.append(TimelineGap(start=cursor, end=s, reason=NO_RECORDING))
        cursor = max(cursor, e)
    merged_under = max(tolerance, motion_tolerance)
    return TimelineResult(
        camera=request.camera,
        start=start,
        end=end,
        spans=[TimeRange(start=s, end=e) for s, e in spans],
        gaps=sorted([*gaps, *damaged], key=lambda g: g.start)[:MAX_TIMELINE_ITEMS],
        motion=[TimeRange(start=s, end=e) for s, e in motion],
        merged_under=merged_under if merged_under > JOIN_TOLERANCE_S else 0.0,
    )


def answer(index: SegmentIndex, cameras: Sequence[str], command: Command, now: float) -> Reply:
    """The reply to a `timeline` command: the result, or ok false naming what is wrong."""
    try:
        request = TimelineRequest.model_validate(command.args, strict=True)
    except ValueError as exc:
        return Reply(id=command.id, ok=False, time=now, error=f"bad timeline request: {str(exc)[:500]}")
    if request.camera not in cameras:
        return Reply(id=command.id, ok=False, time=now, error=f"unknown camera {request.camera!r} on this box")
    if request.end <= request.start:
        return Reply(id=command.id, ok=False, time=now, error="the window's end must be after its start")
    if request.end - request.start > MAX_TIMELINE_WINDOW_SECONDS:
        return Reply(id=command.id, ok=False, time=now, error="a timeline window is at most a day: ask a day at a time")
    result = timeline_result(index, request)
    return Reply(id=command.id, ok=True, time=now, result=result.model_dump(mode="json"))


def release_hold(index: SegmentIndex, command: Command, now: float) -> Reply:
    """The reply to a `release_hold` command (contract/holds.py): the clip's hold is gone."""
    try:
        request = ReleaseHoldRequest.model_validate(command.args, strict=True)
    except ValueError as exc:
        return Reply(id=command.id, ok=False, time=now, error=f"bad release_hold request: {str(exc)[:500]}")
    reason = clip_hold_reason(request.clip)
    released = sum(index.release_hold(h.id) for h in index.holds(request.camera) if h.reason == reason)
    return Reply(id=command.id, ok=True, time=now, result=ReleaseHoldResult(released=released).model_dump())
