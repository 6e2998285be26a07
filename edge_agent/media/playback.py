"""Playback from the ring buffer for the media channel (contract/media.py, kind "playback").

`PlaybackSource` yields what the channel sends on its WebSocket, in order: a `MediaNotice`
("started", with the time of the first frame), the fMP4 init segment (ftyp + moov), then whole
fragments (moof + mdat), and a closing `MediaNotice` ("ended": the recording stops here, with
why and where it resumes after a gap; "failed": a segment could not be read). The bytes are the
recorded H.264 packets, never re-encoded: each segment is demuxed (after the same size and
SHA-256 check a clip makes) and its packets muxed again into one fragmented MP4 whose timestamps
run on from 0 at the keyframe at or before the asked time, across segment boundaries, so the
browser appends one continuous timeline to its SourceBuffer. A new init segment follows only if
the stream's codec or size changes between segments.

It is paced: a packet goes out when its media time, divided by the speed (1, 2 or 4), has passed
since the start, with a lead of a few seconds so the browser's buffer never runs dry, so
playback costs the uplink what live view does (times the speed) and the box nothing while the
viewer pauses. Near the live edge it waits for the recorder's next segment rather than stopping.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from contract.media import MediaNotice, MediaRequest
from edge_agent.media.source import MediaItem, MediaUnavailable, SourceFactory
from edge_agent.record.index import SegmentIndex
from edge_agent.record.integrity import SegmentDamaged, demuxed, read_checked
from edge_agent.record.segment import FRAGMENT_OPTIONS, Segment, iso
from edge_agent.record.timeline import JOIN_TOLERANCE_S

log = logging.getLogger(__name__)
LEAD_SECONDS = 3.0  # sent ahead of real time: the browser's buffer covers a slow moment of the uplink
LOOKAHEAD_SECONDS = 3600.0  # segments are looked up an hour at a time
LIVE_EDGE_WAIT_SECONDS = 15.0  # at the newest segment: how long to wait for the recorder's next one


class PlaybackError(MediaUnavailable):
    """Playback cannot start; the message says why (no recording at that time, unknown camera)."""


@dataclass(frozen=True)
class _Format:
    codec: str
    width: int
    height: int

    @classmethod
    def of(cls, segment: Segment) -> _Format:
        return cls(segment.codec, segment.width, segment.height)


class _Collector(io.RawIOBase):
    """Where the muxer writes; hands out whole top-level MP4 boxes (init, then moof + mdat)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += bytes(b)
        return len(b)

    def take(self) -> tuple[list[bytes], bytes | None]:
        """(whole moof+mdat fragments, the init segment if it is complete) written so far."""
        boxes: list[tuple[bytes, bytes]] = []
        pos = 0
        while pos + 8 <= len(self.data):
            size = int.from_bytes(self.data[pos : pos + 4], "big")
            kind = bytes(self.data[pos + 4 : pos + 8])
            if size < 8 or pos + size > len(self.data):
                break
            boxes.append((kind, bytes(self.data[pos : pos + size])))
            pos += size
        init: bytes | None = None
        chunks: list[bytes] = []
        used = 0
        i = 0
        while i < len(boxes):
            kind, box = boxes[i]
            if kind in (b"ftyp", b"moov"):
                if kind == b"moov":
                    init = b"".join(b for k, b in boxes[: i + 1] if k in (b"ftyp", b"moov"))
                used += len(box)
                i += 1
            elif kind == b"moof":
                if i + 1 >= len(boxes):
                    break  # its mdat is not complete yet
                chunks.append(box + boxes[i + 1][1])
                used += len(box) + len(boxes[i + 1][1])
                i += 2
            else:  # styp, sidx, mfra...: nothing a SourceBuffer needs
                used += len(box)
                i += 1
        del self.data[:used]
        return chunks, init


class PlaybackSource:
    """One playback: iterate it for the channel's messages; `close()` from any thread stops it."""

    def __init__(
        self,
        root: Path,
        index: SegmentIndex,
        session: str,
        camera: str,
        start: float,
        speed: int = 1,
        now: Callable[[], float] = time.time,
        pace: bool = True,
    ) -> None:
        self.root, self.index, self.session, self.camera = root, index, session, camera
        self.start, self.speed, self.now, self.pace = start, speed, now, pace
        self._stop = threading.Event()
        self.first = self._first_segment()

    def close(self) -> None:
        self._stop.set()

    def _first_segment(self) -> Segment:
        found = [s for s in self.index.segments(self.camera, self.start, self.start + 1) if s.damage is None]
        covering = [s for s in found if s.start - JOIN_TOLERANCE_S <= self.start < s.end]
        if covering:
            return covering[0]
        later = [s for s in self.index.segments(self.camera, self.start, self.start + 7 * 86_400) if s.damage is None]
        hint = f"; the next recording starts at {iso(later[0].start)}" if later else ""
        raise PlaybackError(f"no recording of camera {self.camera!r} at {iso(self.start)}{hint}")

    def _wait(self, seconds: float) -> bool:
        """Sleep unless closed; False once closed."""
        return not self._stop.wait(seconds) if seconds > 0 else not self._stop.is_set()

    def _next_segment(self, after: Segment) -> Segment | None:
        """The segment that continues `after` without a gap; at the live edge wait for it."""
        deadline = time.monotonic() + LIVE_EDGE_WAIT_SECONDS
        while True:
            for seg in self.index.segments(self.camera, after.end - JOIN_TOLERANCE_S, after.end + LOOKAHEAD_SECONDS):
                if seg.start > after.start and seg.path != after.path:
                    return seg if seg.start - after.end <= JOIN_TOLERANCE_S and seg.damage is None else None
            recent = self.now() - after.end < LIVE_EDGE_WAIT_SECONDS + (after.end - after.start)
            if not recent or time.monotonic() >= deadline or not self._wait(0.5):
                return None

    def __iter__(self) -> Iterator[MediaItem]:
        """The media channel's MediaSource: notices and bytes in the order they happen."""
        segment: Segment | None = self.first
        begin: float | None = None
        last_dts = -1
        clock0 = time.monotonic()
        fmt: _Format | None = None
        out: Any = None
        out_stream: Any = None
        collector = _Collector()
        reached = self.start
        try:
            while segment is not None and not self._stop.is_set():
                try:
                    checked = read_checked(self.root, segment)
                    with demuxed(checked) as (stream, timed):
                        if begin is None:
                            keys = [t for t, p in timed if p.is_keyframe and t <= self.start + 1e-6]
                            begin = keys[-1] if keys else next(t for t, p in timed if p.is_keyframe)
                            yield MediaNotice(session=self.session, state="started", time=begin)
                        if fmt != _Format.of(segment):
                            if out is not None:  # the stream changed: a new init segment
                                out.close()
                                yield from collector.take()[0]
                                collector = _Collector()
                            fmt = _Format.of(segment)
                            out = av.open(collector, "w", format="mp4", options=dict(FRAGMENT_OPTIONS))
                            out_stream = out.add_stream_from_template(stream)
                            if stream.codec_context.name == "hevc":
                                out_stream.codec_tag = "hvc1"
                        tb = float(stream.time_base)
                        for t, packet in timed:
                            if t < begin - 1e-6:
                                continue
                            if self.pace and not self._wait(
                                clock0 + (t - begin) / self.speed - LEAD_SECONDS - time.monotonic()
                            ):
                                return
                            dts = max(round((t - begin) / tb), last_dts + 1)
                            delay = (packet.pts - packet.dts) if packet.pts is not None else 0
                            packet.dts, packet.pts = dts, dts + delay
                            packet.stream = out_stream
                            out.mux(packet)
                            last_dts = dts
                            reached = t + float((packet.duration or 0) * stream.time_base)
                            chunks, init = collector.take()
                            if init is not None:
                                yield init
                            yield from chunks
                except SegmentDamaged as exc:
                    log.warning("playback stops at damaged segment %s: %s", segment.path, exc.problem)
                    yield MediaNotice(
                        session=self.session,
                        state="ended",
                        time=reached,
                        error=f"the recording at {iso(segment.start)} is damaged ({exc.problem})",
                    )
                    return
                following = self._next_segment(segment)
                if following is None and not self._stop.is_set():
                    if out is not None:
                        out.close()
                        out = None
                        yield from collector.take()[0]
                    later = self.index.segments(self.camera, segment.end + JOIN_TOLERANCE_S, segment.end + 7 * 86_400)
                    resumes = f"; it resumes at {iso(later[0].start)}" if later else ""
                    yield MediaNotice(
                        session=self.session,
                        state="ended",
                        time=reached,
                        error=f"no recording after {iso(segment.end)}{resumes}",
                    )
                segment = following
        finally:
            if out is not None:
                with contextlib.suppress(av.FFmpegError):  # stopped mid-write: nothing more is sent anyway
                    out.close()


def playback_factory(root: Path, index: SegmentIndex, cameras: Collection[str]) -> SourceFactory:
    """The media channel's source for `kind: playback` requests."""

    def make(request: MediaRequest) -> PlaybackSource:
        if request.camera not in cameras:
            raise PlaybackError(f"unknown camera {request.camera!r} on this box")
        if request.start is None:
            raise PlaybackError("a playback request needs a start time")
        return PlaybackSource(root, index, request.session, request.camera, request.start, request.speed)

    return make
