"""What is recorded for a camera in a time range: spans of continuous video and the gaps between."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.record.segment import Segment, iso

# Segments closer than this are one span (keyframe cuts and timestamp rounding leave slivers).
JOIN_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    segments: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start

    def as_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"start": iso(self.start), "end": iso(self.end), "seconds": round(self.duration, 3)}
        if self.segments:
            d["segments"] = self.segments
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
    for seg in sorted(segments, key=lambda s: s.start):
        s, e = max(seg.start, start), min(seg.end, end)
        if e <= s:
            continue
        if spans and s - spans[-1].end <= JOIN_TOLERANCE_S:
            last = spans[-1]
            spans[-1] = Span(last.start, max(last.end, e), last.segments + 1)
        else:
            spans.append(Span(s, e, 1))
    gaps: list[Span] = []
    cursor = start
    for span in spans:
        if span.start - cursor > JOIN_TOLERANCE_S:
            gaps.append(Span(cursor, span.start))
        cursor = max(cursor, span.end)
    if end - cursor > JOIN_TOLERANCE_S:
        gaps.append(Span(cursor, end))
    return Timeline(camera, start, end, spans, gaps)
