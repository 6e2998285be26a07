"""Just enough ISO BMFF to relay fragmented MP4: which message is the init segment, and does a
fragment start with a keyframe (a late or lagging viewer may only join at one).

The box sends whole boxes per message (contract/media.py): the init segment (ftyp + moov), then
moof + mdat pairs. A keyframe is a sample whose `sample_is_non_sync_sample` flag is clear; the
flags of a fragment's first sample are in its trun (first_sample_flags, or the per-sample flags)
or else the tfhd's default_sample_flags.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

_NON_SYNC = 0x00010000


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of each box in data[start:end]; stops at a malformed one."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def is_init(data: bytes) -> bool:
    first = next(boxes(data), None)
    return first is not None and first[0] in (b"ftyp", b"moov")


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, payload, box_end in boxes(data, start, end):
        if found == kind:
            return payload, box_end
    return None


def _first_sample_flags(data: bytes, traf: tuple[int, int]) -> int | None:
    trun = _child(data, *traf, b"trun")
    if trun is not None and trun[0] + 8 <= trun[1]:
        pos = trun[0]
        flags = struct.unpack_from(">I", data, pos)[0] & 0xFFFFFF
        count = struct.unpack_from(">I", data, pos + 4)[0]
        pos += 8 + (4 if flags & 0x1 else 0)  # data_offset
        if flags & 0x4 and pos + 4 <= trun[1]:  # first_sample_flags
            return int(struct.unpack_from(">I", data, pos)[0])
        if flags & 0x400 and count:  # per-sample flags: skip duration and size of sample 0
            pos += (4 if flags & 0x100 else 0) + (4 if flags & 0x200 else 0)
            if pos + 4 <= trun[1]:
                return int(struct.unpack_from(">I", data, pos)[0])
    tfhd = _child(data, *traf, b"tfhd")
    if tfhd is None or tfhd[0] + 8 > tfhd[1]:
        return None
    flags = struct.unpack_from(">I", data, tfhd[0])[0] & 0xFFFFFF
    pos = tfhd[0] + 8
    for bit, size in ((0x1, 8), (0x2, 4), (0x8, 4), (0x10, 4)):
        pos += size if flags & bit else 0
    if flags & 0x20 and pos + 4 <= tfhd[1]:
        return int(struct.unpack_from(">I", data, pos)[0])
    return None


def starts_with_keyframe(data: bytes) -> bool:
    """Does the first fragment of this message start with a sync sample (keyframe)?"""
    moof = _child(data, 0, len(data), b"moof")
    if moof is None:
        return False
    traf = _child(data, *moof, b"traf")
    if traf is None:
        return False
    flags = _first_sample_flags(data, traf)
    return flags is not None and not flags & _NON_SYNC
