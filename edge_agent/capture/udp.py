"""RTSP over UDP: the receive buffer the agent asks for, and what the kernel grants.

Over UDP nothing slows the camera down. Its datagrams wait in the socket's receive buffer until
the agent reads them, and those that find the buffer full are dropped by the kernel: a frame
that misses one datagram is a damaged frame, a frame that misses all of them is gone. The
recorder reads in batches (`READ_BATCH_SECONDS`, 0.2 s) and stops reading while it closes a
segment (fsync), so the buffer must hold that long of the camera's stream and more.

FFmpeg asks for 384 KiB, which lets 768 KiB queue (the kernel counts each datagram at about
twice its size). Sampled while the recorder read a 4K stream at 8 Mbit/s in 0.2 s batches, about
500 KB of that was in use, and in a 60 s run on loopback 296 datagrams were dropped: six frames
gone, one segment in six with damaged frames. So the agent asks for `RECEIVE_BUFFER_BYTES`,
about 3 s of 8 Mbit/s (1.5 s of 16 Mbit/s); the memory is only used while datagrams wait.

Linux grants at most `net.core.rmem_max` (212992 bytes on a stock kernel). Asking more than the
cap silently gets the cap, so the agent reads the cap itself, asks for no more than it, and the
camera worker says so and reads such a camera frame by frame instead of in batches: with
batches, 208 KiB lost about 65 datagrams a second at 8 Mbit/s, frame by frame none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
RMEM_MAX = Path("/proc/sys/net/core/rmem_max")


@dataclass(frozen=True)
class UdpBuffer:
    asked: int  # what the agent wants per RTP socket
    granted: int  # what the kernel lets a socket have: the ask, capped at net.core.rmem_max

    @property
    def capped(self) -> bool:
        return self.granted < self.asked


def udp_buffer(rmem_max: Path | None = None) -> UdpBuffer:
    """The receive buffer to ask FFmpeg for; where the cap cannot be read (not Linux), the full ask."""
    try:
        cap = int((rmem_max or RMEM_MAX).read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return UdpBuffer(RECEIVE_BUFFER_BYTES, RECEIVE_BUFFER_BYTES)
    return UdpBuffer(RECEIVE_BUFFER_BYTES, min(RECEIVE_BUFFER_BYTES, cap))
