"""One ring-buffer segment: what it is (`Segment`) and how it is written (`SegmentWriter`).

Segments are fragmented MP4 written by stream copy: a fragment is flushed at every keyframe
and at least once a second, so a power cut leaves a `.part` file whose fragments up to the
cut still play (the repair on start salvages it). A finished segment is fsynced and renamed
from `.part` to `.mp4`, so a `.mp4` name always means a complete file.

Each finished segment carries its size and SHA-256, taken from the bytes as they were written
(hashing ~250 KB/s per camera costs next to nothing), so a later change to the file, a truncation
or a garbled block, can be told from the recording (see integrity.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from common.durable import fsync_dir
from edge_agent.record.paths import PART_SUFFIX

START_TAG = "diaolou-start="
FRAGMENT_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    # Also flush mid-GOP so a camera with a long GOP loses at most ~1 s at a power cut.
    "frag_duration": "1000000",
}
# The muxer keeps a fragment in memory until it is complete, then flushes it to the file. With a
# buffer larger than a 1 s fragment of a 4 MP main stream (~500 KB at 4 Mbit/s) that is one
# write() per fragment; every write is a call into Python (see _SegmentFile), and PyAV's default
# 32 KiB buffer meant eight a second per camera.
WRITE_BUFFER_BYTES = 1 << 20


@dataclass(frozen=True)
class Segment:
    """A row of the ring-buffer index. Times are epoch seconds, UTC."""

    camera: str
    start: float
    end: float
    path: str  # relative to the storage root
    bytes: int
    codec: str
    width: int
    height: int
    keyframes: int
    salvaged: bool = False
    motion: float | None = None  # share of analysed frames with motion (None: not analysed)
    persons: int | None = None  # most people tracked at once during the segment
    sha256: str | None = None  # of the file as finished (None: indexed by a version before hashes)
    damage: str | None = None  # what is wrong with the file now (None: intact or not yet checked)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def row(self) -> dict[str, Any]:
        row = asdict(self)
        row["duration"] = round(self.duration, 6)
        row["salvaged"] = int(self.salvaged)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Segment:
        return cls(
            camera=row["camera"],
            start=row["start"],
            end=row["end"],
            path=row["path"],
            bytes=row["bytes"],
            codec=row["codec"],
            width=row["width"],
            height=row["height"],
            keyframes=row["keyframes"],
            salvaged=bool(row["salvaged"]),
            motion=row.get("motion"),
            persons=row.get("persons"),
            sha256=row.get("sha256"),
            damage=row.get("damage"),
        )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    """ISO-8601 to epoch seconds; a time without a zone is taken as UTC."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


class SegmentWriter:
    """Stream-copies packets of one video stream into `<root>/<rel>.part`, renamed on close."""

    def __init__(self, root: Path, rel: str, camera: str, template: Any, start: float) -> None:
        self.root = root
        self.rel = rel
        self.camera = camera
        self.start = start
        self.final_path = root / rel
        self.part_path = root / (rel + PART_SUFFIX)
        self.final_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = _SegmentFile(self.part_path)
        try:
            self._container = av.open(
                self._file, "w", format="mp4", options=FRAGMENT_OPTIONS, buffer_size=WRITE_BUFFER_BYTES
            )
        except BaseException:
            self._file.close()
            raise
        self._container.metadata["comment"] = START_TAG + iso(start)
        self._stream = self._container.add_stream_from_template(template)
        if template.codec_context.name == "hevc":
            self._stream.codec_tag = "hvc1"  # plays in Safari/iOS players too
        self.codec = template.codec_context.name
        self.width = template.codec_context.width
        self.height = template.codec_context.height
        self.keyframes = 0
        self.packets = 0
        self._base: int | None = None
        self._last_end = 0
        self.time_base: Fraction = template.time_base
        self._seconds_per_tick = float(self.time_base)  # Fraction arithmetic per packet is slow

    def write(self, packet: Any, pts: int, dts: int, duration: int, keyframe: bool) -> None:
        base = self._base
        if base is None:
            base = self._base = dts
        packet.pts = pts - base
        packet.dts = dts - base
        packet.duration = duration
        packet.stream = self._stream
        self._container.mux(packet)
        self.packets += 1
        if keyframe:
            self.keyframes += 1
        self._last_end = dts - base + duration

    @property
    def seconds(self) -> float:
        """Video written so far, by the stream's own timestamps."""
        return self._last_end * self._seconds_per_tick

    def close(self, end: float) -> Segment:
        try:
            self._container.close()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()
        os.replace(self.part_path, self.final_path)
        fsync_dir(self.final_path.parent)
        size = self.final_path.stat().st_size
        return Segment(
            camera=self.camera,
            start=self.start,
            end=end,
            path=self.rel,
            bytes=size,
            codec=self.codec,
            width=self.width,
            height=self.height,
            keyframes=self.keyframes,
            sha256=self._file.sha256(size) or sha256_file(self.final_path),
        )

    def abandon(self) -> None:
        """Close without finishing (disk full, stream error); the .part is left for salvage."""
        with contextlib.suppress(Exception):
            self._container.close()
        self._file.close()


class _SegmentFile(io.RawIOBase):
    """The file FFmpeg writes a segment through.

    FFmpeg's own file writer can drop a buffer on ENOSPC and go on writing the next ones, which
    leaves a segment with holes that still looks whole. Writing through Python, a failed or
    short write raises OSError(ENOSPC) in `mux()` at once, so the recorder knows exactly where
    the good part of the file ends.

    It also hashes the bytes as they go by, as long as the muxer writes the file front to back
    (fragmented MP4 does); after a write anywhere else the hash is dropped and `close` of the
    segment reads the file back instead.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._pos = 0
        self._hash: Any = hashlib.sha256()
        self._hashed = 0  # bytes [0, _hashed) are in the hash

    def sha256(self, size: int) -> str | None:
        """The hash of the whole file if it was written front to back and is `size` bytes long."""
        if self._hash is None or self._hashed != size:
            return None
        return str(self._hash.hexdigest())

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if self._hash is not None:
            if self._pos == self._hashed:
                self._hash.update(view)
                self._hashed += len(view)
            else:
                self._hash = None  # a write back into the file (or past its end): hash it at close
        done = 0
        while done < len(view):
            done += os.write(self._fd, view[done:])  # a short write is retried; ENOSPC raises
        self._pos += done
        return done

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = os.lseek(self._fd, offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
