"""What is recorded for a camera in a time range: spans of continuous video and the gaps between.

A gap says why it is one: `no recording` (the camera was offline, the box was off, retention
deleted it) or `damaged segment` (a file is there but is not the one recorded, see integrity.py),
with the file and what is wrong with it. A damaged segment always ends a span, however short.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.record.segment import Segment, iso

# Segments closer than this are one span (keyframe cuts and timestamp rounding leave slivers).
JOIN_TOLERANCE_S = 1.0
NO_RECORDING = "no recording"
DAMAGED = "damaged segment"


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    segments: int = 0
    reason: str | None = None  # gaps only: NO_RECORDING or DAMAGED
    path: str | None = None  # a DAMAGED gap: the segment's file, relative to the storage root
    problem: str | None = None  # ... and what is wrong with it

    @property
    def duration(self) -> float:
        return self.end - self.start

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"start": iso(self.start), "end": iso(self.end), "seconds": round(self.duration, 3)}
        if self.segments:
            d["segments"] = self.segments
        for key in ("reason", "path", "problem"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d


@dataclass(frozen=True)
class Timeline:
    camera: str
    start: float
    end: float
    spans: list[Span]
    gaps: list[Span]

    @property
    def recorded_seconds(self) -> float:
        return sum(s.duration for s in self.spans)

    @property
    def damaged(self) -> list[Span]:
        return [g for g in self.gaps if g.reason == DAMAGED]

    def as_dict(self) -> dict[str, object]:
        return {
            "camera": self.camera,
            "start": iso(self.start),
            "end": iso(self.end),
            "recorded_seconds": round(self.recorded_seconds, 3),
            "spans": [s.as_dict() for s in self.spans],
            "gaps": [g.as_dict() for g in self.gaps],
        }


def build_timeline(camera: str, segments: list[Segment], start: float, end: float) -> Timeline:
    spans: list[Span] = []
    damaged: list[Span] = []
    after_damage = False  # the next intact segment starts a new span
    for seg in sorted(segments, key=lambda s: s.start):
        s, e = max(seg.start, start), min(seg.end, end)
        if e <= s:
            continue
        if seg.damage is not None:
            damaged.append(Span(s, e, reason=DAMAGED, path=seg.path, problem=seg.damage))
            after_damage = True
            continue
        if spans and not after_damage and s - spans[-1].end <= JOIN_TOLERANCE_S:
            last = spans[-1]
            spans[-1] = Span(last.start, max(last.end, e), last.segments + 1)
        else:
            spans.append(Span(s, e, 1))
        after_damage = False
    gaps: list[Span] = []
    cursor = start
    for covered in sorted(spans + damaged, key=lambda c: c.start):
        if covered.start - cursor > JOIN_TOLERANCE_S:
            gaps.append(Span(cursor, covered.start, reason=NO_RECORDING))
        cursor = max(cursor, covered.end)
    if end - cursor > JOIN_TOLERANCE_S:
        gaps.append(Span(cursor, end, reason=NO_RECORDING))
    return Timeline(camera, start, end, spans, sorted(gaps + damaged, key=lambda g: g.start))
