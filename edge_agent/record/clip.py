"""Cut a clip out of the ring buffer: one MP4 (stream copy, faststart) plus a manifest for evidence.

The clip starts at the keyframe at or before the requested start (a clip must start on a
keyframe to play), and its manifest records the requested and the actual window and the
SHA-256 of the clip and of every source segment, so a police officer can later show that the
clip is what the box recorded.

Every source is read once, checked against the size and SHA-256 its index row holds, and
remuxed from those same bytes, so the manifest never states a hash that is not of what went
into the clip. A segment that fails the check or does not demux is left out (integrity.py): the
clip is made from the rest and the manifest lists the segment under `gaps`, with the problem.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from edge_agent import __version__
from edge_agent.record.index import SegmentIndex
from edge_agent.record.integrity import SegmentDamaged, confirm_intact, demuxed, read_checked, report_damage
from edge_agent.record.repair import repair
from edge_agent.record.segment import Segment, iso, sha256_file
from edge_agent.record.timeline import build_timeline

MAX_CLIP_SECONDS = 24 * 3600
log = logging.getLogger(__name__)


class ClipError(ValueError):
    """The clip cannot be made; the message says why (no recording in the window, bad window...)."""


@dataclass(frozen=True)
class SourceSegment:
    path: str
    start: str
    end: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ClipManifest:
    camera: str
    requested_start: str
    requested_end: str
    actual_start: str
    actual_end: str
    file: str
    bytes: int
    sha256: str
    codec: str
    width: int
    height: int
    packets: int
    sources: list[SourceSegment]
    gaps: list[dict[str, object]] = field(default_factory=list)
    site: str | None = None
    device: str | None = None
    created: str = ""
    tool: str = f"diaolou-agent {__version__}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["ClipError", "ClipManifest", "SourceSegment", "export_clip", "find_segments", "sha256_file"]


@dataclass
class _Cut:
    """What the remux made of the window: the clip's times, its packets, what was used and skipped."""

    begin: float | None = None
    end: float = 0.0
    packets: int = 0
    sources: list[SourceSegment] = field(default_factory=list)
    used: list[Segment] = field(default_factory=list)
    skipped: list[Segment] = field(default_factory=list)  # with `damage` set


def _hour_dirs(root: Path, camera: str, start: float, end: float) -> list[Path]:
    """Hour directories that may hold segments overlapping [start, end] (plus one before)."""
    dirs = []
    t = start - 3600
    while t <= end + 3600:
        dt = datetime.fromtimestamp(t, UTC)
        dirs.append(root / camera / f"{dt:%Y-%m-%d}" / f"{dt:%H}")
        t += 3600
    return dirs


def find_segments(root: Path, index: SegmentIndex, camera: str, start: float, end: float) -> list[Segment]:
    """Indexed segments for the window, after indexing any finished since the agent's last flush."""
    repair(root, index, directories=_hour_dirs(root, camera, start, end))
    return index.segments(camera, start, end)


def export_clip(
    root: Path,
    index: SegmentIndex,
    camera: str,
    start: float,
    end: float,
    out: Path,
    site: str | None = None,
    device: str | None = None,
) -> ClipManifest:
    if end <= start:
        raise ClipError(f"the clip's end ({iso(end)}) must be after its start ({iso(start)})")
    if end - start > MAX_CLIP_SECONDS:
        raise ClipError(f"a clip may cover at most {MAX_CLIP_SECONDS // 3600} hours; split the request")
    segments = find_segments(root, index, camera, start, end)
    if not segments:
        raise ClipError(f"no recording for camera {camera!r} between {iso(start)} and {iso(end)}")
    first = segments[0]
    for seg in segments[1:]:
        if (seg.codec, seg.width, seg.height) != (first.codec, first.width, first.height):
            raise ClipError(
                f"the stream changed from {first.codec} {first.width}x{first.height} to {seg.codec} "
                f"{seg.width}x{seg.height} at {iso(seg.start)}; request the two parts separately"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        cut = _remux(root, index, segments, start, end, tmp)
        if not cut.used:
            problems = "; ".join(f"{s.path}: {s.damage}" for s in cut.skipped)
            raise ClipError(
                f"no readable recording for camera {camera!r} between {iso(start)} and {iso(end)}: "
                f"every segment in the window is damaged ({problems})"
            )
        if cut.packets == 0 or cut.begin is None:
            raise ClipError("no packet of the recording falls in the window")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    # Gaps inside what the clip covers, and every skipped segment of the window wherever it lies.
    lo, hi = max(start, cut.begin), min(end, cut.end)
    for skipped in cut.skipped:
        lo, hi = min(lo, max(start, skipped.start)), max(hi, min(end, skipped.end))
    timeline = build_timeline(camera, cut.used + cut.skipped, lo, hi)
    manifest = ClipManifest(
        camera=camera,
        requested_start=iso(start),
        requested_end=iso(end),
        actual_start=iso(cut.begin),
        actual_end=iso(cut.end),
        file=out.name,
        bytes=out.stat().st_size,
        sha256=sha256_file(out),
        codec=first.codec,
        width=first.width,
        height=first.height,
        packets=cut.packets,
        sources=cut.sources,
        gaps=[g.as_dict() for g in timeline.gaps],
        site=site,
        device=device,
        created=iso(datetime.now(UTC).timestamp()),
    )
    manifest_path = out.with_name(out.name + ".manifest.json")
    manifest_path.write_text(json.dumps(manifest.as_dict(), indent=2) + "\n", encoding="utf-8")
    return manifest


def _begin(timed: list[tuple[float, Any]], start: float) -> float | None:
    """The last keyframe at or before `start`, else the first keyframe (a window starting in a gap)."""
    begin_at: float | None = None
    for t, packet in timed:
        if packet.is_keyframe and (t <= start or begin_at is None):
            begin_at = t
        if t > start:
            break
    return begin_at


def _remux(root: Path, index: SegmentIndex, segments: list[Segment], start: float, end: float, tmp: Path) -> _Cut:
    cut = _Cut()
    last_dts = -1
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
        out_stream: Any = None
        tb: Fraction | None = None
        for segment in segments:
            try:
                checked = read_checked(root, segment)
                with demuxed(checked) as (stream, timed):
                    if cut.begin is None:
                        cut.begin = _begin(timed, start)
                        if cut.begin is None:
                            raise SegmentDamaged(segment, "no keyframe; it cannot start a clip")
                        cut.end = cut.begin
                    for t, packet in timed:
                        if t < cut.begin - 1e-6:
                            continue
                        if t > end:
                            break
                        if out_stream is None:
                            out_stream = dst.add_stream_from_template(stream)
                            if stream.codec_context.name == "hevc":
                                out_stream.codec_tag = "hvc1"
                            tb = stream.time_base
                        assert tb is not None
                        dts = max(round((t - cut.begin) / float(tb)), last_dts + 1)
                        delay = (packet.pts - packet.dts) if packet.pts is not None else 0
                        duration = packet.duration or 0
                        packet.dts = dts
                        packet.pts = dts + delay
                        packet.time_base = tb
                        packet.stream = out_stream
                        dst.mux(packet)
                        last_dts = dts
                        cut.packets += 1
                        cut.end = max(cut.end, t + float(duration * stream.time_base))
            except SegmentDamaged as exc:
                if exc.problem == segment.damage:  # known already: say so anyway, whoever cuts the clip
                    log.warning("damaged segment %s: %s; left out of the clip", segment.path, exc.problem)
                report_damage(index, segment.path, segment.damage, exc.problem)
                cut.skipped.append(replace(segment, damage=exc.problem))
                continue
            confirm_intact(index, checked)
            cut.used.append(replace(segment, damage=None))
            cut.sources.append(
                SourceSegment(segment.path, iso(segment.start), iso(segment.end), len(checked.data), checked.sha256)
            )
    return cut
