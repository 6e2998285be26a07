"""Is a segment's file still the one that was recorded? Its size, its SHA-256, and that it demuxes.

The index holds each finished segment's size and SHA-256, taken as it was written (segment.py).
A file that no longer matches them (cut short, a garbled block from a failing SD card, edited
by hand) or cannot be read is *damaged*: a WARNING names the file and what is wrong, its index
row keeps the problem in `damage`, so `timeline` shows a gap there and `status` counts it, and
a clip leaves it out and lists it under the manifest's gaps. A damaged file is never deleted
here: it may matter as evidence, and retention removes it in its time like any other.

The checks go from cheap to thorough. The start-up repair compares every file's size with its
row (a stat during the walk it makes anyway) and fully checks the newest `STARTUP_CHECK_SEGMENTS`
of each camera; a clip fully checks every segment it uses and remuxes the very bytes it hashed.
A row indexed before hashes existed gets its hash at its first full check, once the file
demuxes; until then only its size vouches for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from edge_agent.record.index import SegmentIndex
from edge_agent.record.segment import Segment

log = logging.getLogger(__name__)

# Per camera, at start-up, before recording resumes: about 2 minutes of 10 s segments, ~30 MB at
# 2 Mbit/s, a second or less even from an SD card; older segments are checked when a clip uses them.
STARTUP_CHECK_SEGMENTS = 12


class SegmentDamaged(Exception):
    def __init__(self, segment: Segment, problem: str) -> None:
        super().__init__(f"{segment.path}: {problem}")
        self.segment = segment
        self.problem = problem


@dataclass(frozen=True)
class SegmentBytes:
    """A segment's file as read: its bytes and their SHA-256."""

    segment: Segment
    data: bytes
    sha256: str


def size_problem(recorded: int, size: int) -> str | None:
    if size == recorded:
        return None
    return f"size is {size} bytes, {recorded} when recorded"


def read_checked(root: Path, segment: Segment) -> SegmentBytes:
    """The file's bytes, if their size and SHA-256 are the recorded ones; else SegmentDamaged."""
    try:
        data = (root / segment.path).read_bytes()
    except FileNotFoundError:
        raise SegmentDamaged(segment, "file is missing") from None
    except OSError as exc:
        raise SegmentDamaged(segment, f"cannot be read: {exc.strerror or exc}") from None
    problem = size_problem(segment.bytes, len(data))
    if problem is not None:
        raise SegmentDamaged(segment, problem)
    digest = hashlib.sha256(data).hexdigest()
    if segment.sha256 is not None and digest != segment.sha256:
        raise SegmentDamaged(segment, "content changed since it was recorded (its SHA-256 differs)")
    return SegmentBytes(segment, data, digest)


@contextlib.contextmanager
def demuxed(checked: SegmentBytes) -> Iterator[tuple[Any, list[tuple[float, Any]]]]:
    """A segment's video stream and all its (wall time, packet), demuxed from the checked bytes.

    All packets are read before any is handed out, so a segment that fails to demux halfway is
    left out whole (SegmentDamaged) rather than cut off at a point nobody chose."""
    segment = checked.segment
    try:
        container = av.open(io.BytesIO(checked.data), "r")
    except av.FFmpegError as exc:
        raise SegmentDamaged(segment, f"cannot be demuxed: {exc}") from None
    with container:
        if not container.streams.video:
            raise SegmentDamaged(segment, "no video stream")
        stream = container.streams.video[0]
        timed: list[tuple[float, Any]] = []
        first: int | None = None
        try:
            if stream.time_base is None:
                raise SegmentDamaged(segment, "the video stream has no time base")
            time_base = Fraction(stream.time_base)
            for packet in container.demux(stream):
                if packet.dts is None:
                    continue
                if first is None:
                    first = packet.dts
                timed.append((segment.start + float((packet.dts - first) * time_base), packet))
        except av.FFmpegError as exc:
            raise SegmentDamaged(segment, f"cannot be demuxed: {exc}") from None
        if not any(packet.is_keyframe for _, packet in timed):
            raise SegmentDamaged(segment, "no keyframe")
        yield stream, timed


def report_damage(index: SegmentIndex, path: str, known: str | None, problem: str) -> None:
    """Log a damaged segment (once per new problem) and mark it in the index."""
    if problem == known:
        return
    log.warning("damaged segment %s: %s; it counts as a gap and no clip uses it", path, problem)
    index.mark_damaged(path, problem)


def confirm_intact(index: SegmentIndex, checked: SegmentBytes) -> None:
    """A full check passed: store a missing hash, clear an old damage mark."""
    segment = checked.segment
    if segment.sha256 is None:
        index.set_sha256(segment.path, checked.sha256)
    if segment.damage is not None:
        log.info("segment %s matches its recording again (was: %s)", segment.path, segment.damage)
        index.mark_damaged(segment.path, None)


def check_segment(root: Path, index: SegmentIndex, segment: Segment) -> str | None:
    """Fully check one segment and record the outcome in the index; the problem, or None."""
    try:
        checked = read_checked(root, segment)
        if segment.sha256 is None:  # nothing to compare with: at least it must demux
            with demuxed(checked):
                pass
    except SegmentDamaged as exc:
        report_damage(index, segment.path, segment.damage, exc.problem)
        return exc.problem
    confirm_intact(index, checked)
    return None


def check_newest(root: Path, index: SegmentIndex, per_camera: int = STARTUP_CHECK_SEGMENTS) -> int:
    """Fully check the newest segments of every camera; how many are newly found damaged."""
    found = 0
    for segment in index.newest(per_camera):
        problem = check_segment(root, index, segment)
        found += problem is not None and problem != segment.damage
    return found
