"""Open a stream with PyAV and read its video packets, with timeouts, file pacing and looping."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import av

from edge_agent.capture.sources import StreamSpec


class StreamEnded(Exception):
    """A live stream stopped delivering packets (EOF from the camera or server)."""


class StreamOpenError(Exception):
    """The stream could not be opened; the message is safe to log (no credentials)."""


def open_stream(spec: StreamSpec, open_timeout: float, read_timeout: float) -> Any:
    # RTSP carries FFmpeg's own socket timeout in its options (see sources.stream_spec). PyAV's
    # timeout works through an interrupt callback that takes the GIL on every I/O poll: it cost
    # 60 % more CPU per stream, so it is kept for V4L2 devices only, which have no such option.
    timeout = (open_timeout, read_timeout) if spec.kind == "v4l2" else None
    try:
        container = av.open(spec.url, format=spec.format, options=dict(spec.options), timeout=timeout)
    except av.FFmpegError as exc:
        raise StreamOpenError(f"{spec.display}: {describe_av_error(exc)}") from None
    except OSError as exc:
        raise StreamOpenError(f"{spec.display}: {exc.strerror or exc}") from None
    if not container.streams.video:
        container.close()
        raise StreamOpenError(f"{spec.display}: no video stream")
    return container


def describe_av_error(exc: BaseException) -> str:
    """FFmpeg's message without the URL (which may hold a password)."""
    message = getattr(exc, "strerror", None) or str(exc)
    if "401" in message or "Unauthorized" in message:
        return "401 Unauthorized: wrong user name or password"
    if "404" in message or "Not Found" in message:
        return "404 Not Found: wrong stream path (check the profile or channel)"
    return str(message)


# Below this wait for a packet the reader is behind the camera; above it, at the live edge.
CAUGHT_UP_SECONDS = 0.01


def video_packets(
    container: Any,
    spec: StreamSpec,
    loop: bool,
    stall_seconds: float,
    complete_only: bool = False,
    batch_seconds: float = 0.0,
) -> Iterator[Any]:
    """Video packets; a file is paced to real time and, with `loop`, repeated forever.

    A live stream that delivers nothing for `stall_seconds` (the read timeout given to FFmpeg)
    ends with StreamEnded. `complete_only` (for recording) drops the possibly partial packet a
    live stream ends with, at the cost of handing each packet on one frame later.
    `batch_seconds` > 0: once caught up with a live stream, let that long of it gather in the
    socket before reading on (see _live_packets).
    """
    if spec.live:
        return _live_packets(container, spec, stall_seconds, complete_only, batch_seconds)
    return _file_packets(container, loop)


def _live_packets(
    container: Any, spec: StreamSpec, stall_seconds: float, complete_only: bool, batch_seconds: float
) -> Iterator[Any]:
    # When a read fails (EOF, reset, timeout), FFmpeg's H.264/H.265 parser flushes the access unit
    # it was assembling as an ordinary packet, complete or not: a camera that hung in the middle
    # of a keyframe left SPS+PPS with no picture in the recording, which decoders reject. So for
    # the recorder every packet is held back until the next one proves the stream still flows,
    # and the one in hand when the stream ends is dropped (one frame per outage). Analysis skips
    # the hold (a frame of alert latency): a partial last frame only fails to decode.
    # A flush after a timeout arrives one full read timeout after the demuxer was asked; that
    # gap alone shows the camera hung, without waiting for FFmpeg's second timeout that precedes
    # the error. The gap is timed inside the demux call only, so a slow consumer (an SD card
    # stalling a write) is not mistaken for a silent camera.
    # Batching: woken for every frame, the reader pays for the wake-up (poll, context switch, an
    # interpreter whose caches went cold in the 67 ms since the last frame) once per frame; that
    # was most of the recorder's cost above ffmpeg's at one camera. Sleeping `batch_seconds` once
    # caught up lets several frames wait in the kernel's socket buffer and be read in one warm
    # pass. The recorder does not need them sooner: they go to a file.
    clock, sleep = time.monotonic, time.sleep
    held = None
    asked = clock()
    for packet in container.demux(container.streams.video[0]):
        waited = clock() - asked
        if waited >= stall_seconds:
            raise StreamEnded(f"{spec.display}: no data for {waited:.0f} s")
        if packet.size:  # size 0: the demuxer's flush packet
            if not complete_only:
                yield packet
            else:
                if held is not None:
                    yield held
                held = packet
        if batch_seconds and waited > CAUGHT_UP_SECONDS:
            sleep(batch_seconds)
        asked = clock()
    raise StreamEnded(f"{spec.display}: stream ended")


def _file_packets(container: Any, loop: bool) -> Iterator[Any]:
    stream = container.streams.video[0]
    pace_start: float | None = None
    pace_offset = 0.0
    while True:
        last_t = 0.0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # demuxer flush packet
            t = float(packet.dts * packet.time_base) if packet.dts is not None else last_t
            last_t = max(last_t, t)
            if pace_start is None:
                pace_start = time.monotonic() - t
            delay = pace_start + pace_offset + t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield packet
        if not loop:
            return
        pace_offset += last_t + 1 / float(stream.average_rate or 15)
        container.seek(0)
