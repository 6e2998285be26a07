"""Make the index match the disk: index unknown files, salvage interrupted ones, drop missing rows,
and mark segments whose file is no longer the one recorded (integrity.py).

Runs on every start (after a kill -9 or a power cut) and, limited to a few directories, before
a clip or timeline query so that segments finished since the last index flush are included.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from edge_agent.record.index import SegmentIndex
from edge_agent.record.integrity import check_newest, report_damage, size_problem
from edge_agent.record.paths import PART_SUFFIX, parse_relpath
from edge_agent.record.segment import START_TAG, Segment, parse_iso

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RepairReport:
    indexed: int = 0
    salvaged: int = 0
    discarded: int = 0
    missing_rows: int = 0
    damaged: int = 0  # segments newly found damaged (see integrity.py)


def probe_segment(root: Path, rel: str, salvaged: bool = False) -> Segment | None:
    """Read a segment's packets (no decoding) to learn its timing; None if nothing is playable.

    Size and SHA-256 are those of the very bytes probed."""
    parsed = parse_relpath(rel)
    if parsed is None:
        return None
    camera, path_start = parsed
    try:
        data = (root / rel).read_bytes()
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            start = _tagged_start(container.metadata) or path_start
            keyframes, first, last_end = _scan(container, stream)
            if keyframes == 0 or first is None:
                return None
            seconds = float((last_end - first) * _time_base(stream))
            ctx = stream.codec_context
            return Segment(
                camera=camera,
                start=start,
                end=start + seconds,
                path=rel,
                bytes=len(data),
                codec=ctx.name,
                width=ctx.width,
                height=ctx.height,
                keyframes=keyframes,
                salvaged=salvaged,
                sha256=hashlib.sha256(data).hexdigest(),
            )
    except (av.FFmpegError, OSError, ValueError) as exc:
        log.warning("cannot read segment %s: %s", rel, exc)
        return None


def _time_base(stream: Any) -> Fraction:
    if stream.time_base is None:
        raise ValueError("stream has no time base")
    return Fraction(stream.time_base)


def _tagged_start(metadata: dict[str, str]) -> float | None:
    comment = metadata.get("comment", "")
    if comment.startswith(START_TAG):
        try:
            return parse_iso(comment[len(START_TAG) :])
        except ValueError:
            return None
    return None


def _scan(container: Any, stream: Any) -> tuple[int, int | None, int]:
    keyframes, first, last_end = 0, None, 0
    try:
        for packet in container.demux(stream):
            if packet.dts is None:
                continue
            if packet.is_corrupt:
                break
            if first is None:
                first = packet.dts
            keyframes += int(packet.is_keyframe)
            last_end = max(last_end, packet.dts + (packet.duration or 0))
    except av.FFmpegError:
        pass  # a truncated tail: what was read before it counts
    return keyframes, first, last_end


def salvage_part(root: Path, part_rel: str) -> Segment | None:
    """Turn an interrupted `<rel>.part` into a playable `<rel>` with the fragments that were complete."""
    rel = part_rel.removesuffix(PART_SUFFIX)
    part, final = root / part_rel, root / rel
    tmp = root / (rel + ".salvage")
    try:
        with av.open(str(part)) as src:
            if not src.streams.video:
                raise ValueError("no video stream")
            stream = src.streams.video[0]
            start = _tagged_start(src.metadata)
            with av.open(str(tmp), "w", format="mp4", options={"movflags": "faststart"}) as dst:
                if start is not None:
                    dst.metadata["comment"] = src.metadata["comment"]
                out = dst.add_stream_from_template(stream)
                written = 0
                try:
                    for packet in src.demux(stream):
                        if packet.dts is None:
                            continue
                        if packet.is_corrupt:
                            break  # the sample cut off by the crash; everything after it is gone too
                        packet.stream = out
                        dst.mux(packet)
                        written += 1
                except av.FFmpegError:
                    pass
        if written == 0:
            raise ValueError("no complete packet")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        part.unlink(missing_ok=True)
    except (av.FFmpegError, OSError, ValueError) as exc:
        log.warning("discarding unplayable interrupted segment %s: %s", part_rel, exc)
        tmp.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
        return None
    return probe_segment(root, rel, salvaged=True)


def repair(root: Path, index: SegmentIndex, directories: list[Path] | None = None) -> RepairReport:
    """Reconcile `index` with the files under `root` (or only under `directories`).

    A known file whose size is not its row's is marked damaged; the full (start-up) repair also
    checks the newest segments of each camera byte for byte."""
    known = index.fingerprints()
    seen: set[str] = set()
    indexed = salvaged = discarded = damaged = 0
    for directory in directories if directories is not None else _camera_dirs(root):
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            if rel.endswith(".salvage"):
                path.unlink(missing_ok=True)
                continue
            if rel.endswith(PART_SUFFIX):
                if directories is not None:
                    continue  # may be in progress right now; only the start-up repair salvages
                segment = salvage_part(root, rel)
                if segment is None:
                    discarded += 1
                else:
                    index.add(segment)
                    seen.add(segment.path)
                    salvaged += 1
                continue
            if not rel.endswith(".mp4"):
                continue
            seen.add(rel)
            if rel in known:
                recorded, damage = known[rel]
                problem = size_problem(recorded, path.stat().st_size)
                if problem is not None and problem != damage:
                    report_damage(index, rel, damage, problem)
                    damaged += 1
                continue
            segment = probe_segment(root, rel)
            if segment is None:
                if directories is None:
                    log.warning("discarding unplayable segment %s", rel)
                    path.unlink(missing_ok=True)
                    seen.discard(rel)
                    discarded += 1
                continue
            index.add(segment)
            indexed += 1
    missing = 0
    if directories is None:
        gone = set(known) - seen
        missing = len(gone)
        if gone:
            index.remove(gone)
    index.flush()
    if directories is None:
        damaged += check_newest(root, index)
    report = RepairReport(indexed, salvaged, discarded, missing, damaged)
    if indexed or salvaged or discarded or missing or damaged:
        log.info(
            "index repaired: %d files indexed, %d interrupted segments salvaged, %d unplayable discarded, "
            "%d rows without a file dropped, %d damaged segments found",
            indexed,
            salvaged,
            discarded,
            missing,
            damaged,
        )
    return report


def _camera_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
