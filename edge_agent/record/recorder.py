"""Cut one camera's packet stream into ring-buffer segments (stream copy, keyframe cuts).

Segment start times chain: the next segment starts where the previous one ended by the
stream's own clock, as long as that agrees with the box's clock within a tolerance; when it
does not (a dropped connection, a camera clock running fast or slow), the box's clock wins.
So the timeline has no false gaps, and camera clock drift never accumulates.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.capture.timestamps import Stamped
from edge_agent.config.schema import RecordConfig
from edge_agent.record.index import SegmentIndex
from edge_agent.record.paths import segment_relpath
from edge_agent.record.repair import salvage_part
from edge_agent.record.segment import Segment, SegmentWriter

log = logging.getLogger(__name__)

CHAIN_TOLERANCE_S = 2.0
RECORDABLE_CODECS = ("h264", "hevc")


class UnsupportedCodec(ValueError):
    pass


@dataclass
class RecorderStats:
    segments: int = 0
    bytes: int = 0
    dropped_packets: int = 0
    disk_full_events: int = 0
    last_segment_end: float = 0.0


def is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc)


class SegmentRecorder:
    def __init__(
        self,
        root: Path,
        camera: str,
        config: RecordConfig,
        index: SegmentIndex,
        make_room: Callable[[], bool] = lambda: False,
        on_segment: Callable[[Segment], None] = lambda segment: None,
    ) -> None:
        self.root = root
        self.camera = camera
        self.config = config
        self.index = index
        self.make_room = make_room
        self.on_segment = on_segment
        self.stats = RecorderStats()
        self._writer: SegmentWriter | None = None
        self._template: Any = None
        self._next_start: float | None = None  # chained start for the next segment

    def set_stream(self, template: Any) -> None:
        """Called on every (re)connect with the input video stream."""
        codec = template.codec_context.name
        if codec not in RECORDABLE_CODECS:
            raise UnsupportedCodec(
                f"camera {self.camera}: stream codec {codec!r} cannot be recorded without re-encoding; "
                "set the camera to H.264 or H.265"
            )
        if self._template is not None:
            self.close()  # parameters may have changed (resolution, SPS): start a fresh segment
        self._template = template

    def feed(self, packet: Any, stamped: Stamped, arrival: float) -> None:
        """Record one packet. `arrival` is the box's wall-clock time when it arrived."""
        writer = self._writer
        keyframe = bool(packet.is_keyframe)
        if writer is not None and keyframe and writer.seconds >= self.config.segment_seconds:
            self._finish(arrival)
            writer = None
        if writer is None:
            if not keyframe:
                self.stats.dropped_packets += 1  # a segment must start on a keyframe to play
                return
            writer = self._open(arrival)
            if writer is None:
                self.stats.dropped_packets += 1
                return
        try:
            writer.write(packet, stamped.pts, stamped.dts, stamped.duration, keyframe)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self._on_disk_full(exc)

    def close(self, now: float | None = None) -> None:
        """Finish the open segment (SIGTERM, reconnect). `now` bounds its end if given."""
        if self._writer is not None:
            self._finish(now)
        self._next_start = None

    def _open(self, arrival: float) -> SegmentWriter | None:
        start = arrival
        if self._next_start is not None and abs(self._next_start - arrival) <= CHAIN_TOLERANCE_S:
            start = self._next_start
        rel = segment_relpath(self.camera, start, self.root)
        try:
            self._writer = SegmentWriter(self.root, rel, self.camera, self._template, start)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self._on_disk_full(exc)
            return None
        return self._writer

    def _finish(self, now: float | None) -> None:
        writer, self._writer = self._writer, None
        assert writer is not None
        end = writer.start + writer.seconds
        if now is not None and end > now + CHAIN_TOLERANCE_S:
            end = now  # the camera's clock ran fast; the box's clock is the bound
        try:
            segment = writer.close(end)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            self._on_disk_full(exc, writer)
            return
        self._record(segment)
        self._next_start = segment.end

    def _record(self, segment: Segment) -> None:
        self.index.add(segment)
        self.stats.segments += 1
        self.stats.bytes += segment.bytes
        self.stats.last_segment_end = segment.end
        self.on_segment(segment)

    def _on_disk_full(self, exc: BaseException, writer: SegmentWriter | None = None) -> None:
        """Keep what was written, make room, and carry on at the next keyframe."""
        writer = writer or self._writer
        self._writer = None
        self._next_start = None
        self.stats.disk_full_events += 1
        log.error("camera %s: disk full while recording (%s); evicting oldest segments", self.camera, exc)
        freed = self.make_room()
        if writer is not None:
            writer.abandon()
            segment = salvage_part(self.root, writer.rel + ".part")
            if segment is not None:
                self._record(segment)
        if not freed:
            log.error(
                "camera %s: no segment could be evicted (all on hold?); recording paused until space", self.camera
            )
