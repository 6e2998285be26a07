"""Cut a clip out of the ring buffer: one MP4 (stream copy, faststart) plus a manifest for evidence.

The clip starts at the keyframe at or before the requested start (a clip must start on a
keyframe to play), and its manifest records the requested and the actual window and the
SHA-256 of the clip and of every source segment, so a police officer can later show that the
clip is what the box recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from edge_agent import __version__
from edge_agent.record.index import SegmentIndex
from edge_agent.record.repair import _time_base, repair
from edge_agent.record.segment import Segment, iso
from edge_agent.record.timeline import build_timeline

MAX_CLIP_SECONDS = 24 * 3600


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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
        actual_start, actual_end, packets = _remux(root, segments, start, end, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    timeline = build_timeline(camera, segments, max(start, actual_start), min(end, actual_end))
    manifest = ClipManifest(
        camera=camera,
        requested_start=iso(start),
        requested_end=iso(end),
        actual_start=iso(actual_start),
        actual_end=iso(actual_end),
        file=out.name,
        bytes=out.stat().st_size,
        sha256=sha256_file(out),
        codec=first.codec,
        width=first.width,
        height=first.height,
        packets=packets,
        sources=[
            SourceSegment(s.path, iso(s.start), iso(s.end), s.bytes, sha256_file(root / s.path)) for s in segments
        ],
        gaps=[g.as_dict() for g in timeline.gaps],
        site=site,
        device=device,
        created=iso(datetime.now(UTC).timestamp()),
    )
    manifest_path = out.with_name(out.name + ".manifest.json")
    manifest_path.write_text(json.dumps(manifest.as_dict(), indent=2) + "\n", encoding="utf-8")
    return manifest


def _packets(root: Path, segment: Segment) -> Any:
    """(wall time, packet) for each packet of a segment; time from the segment start and dts."""
    with av.open(str(root / segment.path)) as container:
        stream = container.streams.video[0]
        first: int | None = None
        for packet in container.demux(stream):
            if packet.dts is None:
                continue
            if first is None:
                first = packet.dts
            yield segment.start + float((packet.dts - first) * _time_base(stream)), packet, stream


def _remux(root: Path, segments: list[Segment], start: float, end: float, tmp: Path) -> tuple[float, float, int]:
    # Where does the clip begin? The last keyframe at or before `start` in the first segment that
    # has one (a window starting in a gap begins at the first keyframe after it).
    begin_at: float | None = None
    for t, packet, _ in _packets(root, segments[0]):
        if packet.is_keyframe and (t <= start or begin_at is None):
            begin_at = t
        if t > start:
            break
    if begin_at is None:
        raise ClipError(f"segment {segments[0].path} has no keyframe; it cannot start a clip")

    packets = 0
    last_dts = -1
    actual_end = begin_at
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
        out_stream: Any = None
        tb: Fraction | None = None
        for segment in segments:
            for t, packet, stream in _packets(root, segment):
                if t < begin_at - 1e-6:
                    continue
                if t > end:
                    break
                if out_stream is None:
                    out_stream = dst.add_stream_from_template(stream)
                    if stream.codec_context.name == "hevc":
                        out_stream.codec_tag = "hvc1"
                    tb = stream.time_base
                assert tb is not None
                dts = max(round((t - begin_at) / float(tb)), last_dts + 1)
                delay = (packet.pts - packet.dts) if packet.pts is not None else 0
                duration = packet.duration or 0
                packet.dts = dts
                packet.pts = dts + delay
                packet.time_base = tb
                packet.stream = out_stream
                dst.mux(packet)
                last_dts = dts
                packets += 1
                actual_end = max(actual_end, t + float(duration * stream.time_base))
    if packets == 0:
        raise ClipError("no packet of the recording falls in the window")
    return begin_at, actual_end, packets
