"""What the media channel sends: a `MediaSource` yields fragmented MP4 chunks.

The first chunk is the init segment (ftyp + moov); every next one is one or more whole fragments
(moof + mdat). A source may also yield a `MediaNotice` (playback: "started" with the time of its
first frame, "ended" with where recording resumes), which the channel sends as a text message.
A source is made per session and closed when the session ends, whoever ends it.
`live.py` reads a camera; playback reads the ring buffer. A factory refuses a request it cannot
serve with `MediaUnavailable`, whose message is the reply's error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from contract.media import MediaNotice, MediaRequest


class MediaUnavailable(Exception):
    """The box cannot serve this request (unknown camera, nothing recorded then...)."""


MediaItem = bytes | MediaNotice


class MediaSource(Protocol):
    def __iter__(self) -> Iterator[MediaItem]: ...

    def close(self) -> None: ...


SourceFactory = Callable[[MediaRequest], MediaSource]


class BoxSplitter:
    """Cuts a byte stream into the messages above: the init segment, then moof + mdat pairs.

    FFmpeg writes boxes in pieces (a header patched after its payload), so chunks are emitted
    only once every box in them is complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._init_sent = False

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        out: list[bytes] = []
        pos, cut = 0, 0
        buf = self._buffer
        while pos + 8 <= len(buf):
            size = int.from_bytes(buf[pos : pos + 4], "big")
            kind = bytes(buf[pos + 4 : pos + 8])
            if size == 1 and pos + 16 <= len(buf):
                size = int.from_bytes(buf[pos + 8 : pos + 16], "big")
            if size < 8 or pos + size > len(buf):
                break
            pos += size
            if (not self._init_sent and kind == b"moov") or (self._init_sent and kind == b"mdat"):
                out.append(bytes(buf[cut:pos]))
                cut = pos
                self._init_sent = True
        del self._buffer[:cut]
        return out
