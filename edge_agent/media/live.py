"""Live video from a camera as fragmented MP4, stream-copied (never re-encoded).

Each session opens its own RTSP connection to the camera's sub stream (main on request) and
closes it when the session ends. Why not tap the packets the recorder already reads: the
recorder reads the main stream only, and the sub stream is read only when detection uses it (and
then decoded at ~5 fps, with its packets consumed by the decoder's thread). A phone needs the sub
stream, so a tap would cover the rare case; and the hub shares one session per (camera, stream)
among all viewers, so a camera gets at most one extra connection per stream while anyone
watches and none otherwise. Cameras with a connection limit of 2 (recorder + detector on the
main and sub stream) should set `detect_source` to the sub stream and be watched on it: see
docs/live-view.md.

Latency: every frame is its own fragment (`frag_every_frame`), written out as the next frame
arrives, so a frame leaves the box one frame interval after the camera sent it (the brief's
"at every keyframe and at least every ~0.5 s" with room to spare), rather than the recorder's
1 s fragments. The AVIO buffer is flushed on every packet (`flush_packets`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import av

from contract.media import MediaRequest
from edge_agent.capture.sources import StreamSpec, resolve_sources
from edge_agent.capture.stream import StreamEnded, StreamOpenError, describe_av_error, open_stream, video_packets
from edge_agent.config.schema import AgentConfig
from edge_agent.media.source import BoxSplitter, MediaSource, MediaUnavailable

log = logging.getLogger(__name__)

LIVE_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof+frag_every_frame",
    "flush_packets": "1",
}
JPEG_MIN_INTERVAL = 0.5
JPEG_QUALITY = 75
STALL_SECONDS = 10.0  # no packet for this long: the camera is gone, the session ends with a reason


class _Sink(io.RawIOBase):
    """The muxer's output: whole messages are collected for the channel."""

    def __init__(self) -> None:
        self.splitter = BoxSplitter()
        self.ready: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.ready.extend(self.splitter.feed(chunk))
        return len(chunk)


class LiveSource:
    """fMP4 of one camera stream from its first keyframe on."""

    def __init__(self, spec: StreamSpec, open_timeout: float = 10.0, read_timeout: float = 10.0) -> None:
        self.spec, self.open_timeout, self.read_timeout = spec, open_timeout, read_timeout
        self._container: Any = None
        self._output: Any = None
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            self._container = open_stream(self.spec, self.open_timeout, self.read_timeout)
        except StreamOpenError as exc:
            raise MediaUnavailable(f"cannot open the camera: {exc}") from None
        source = self._container.streams.video[0]
        sink = _Sink()
        self._output = av.open(sink, "w", format="mp4", options=LIVE_OPTIONS)
        stream = self._output.add_stream_from_template(source)
        if source.codec_context.name == "hevc":
            stream.codec_tag = "hvc1"
        base: int | None = None
        last_dts = -1
        held: Any = None
        rate = source.guessed_rate or source.average_rate
        frame_ticks = max(1, round(1 / (rate * source.time_base))) if rate and source.time_base else 1
        try:
            for packet in video_packets(self._container, self.spec, loop=True, stall_seconds=STALL_SECONDS):
                if self._closed:
                    return
                # FFmpeg's RTSP demuxer hands the very first keyframe over without timestamps:
                # it is kept and stamped one frame before the next packet, or the first picture
                # would wait a whole GOP for the next keyframe.
                if packet.dts is None or packet.pts is None:
                    if base is None and packet.is_keyframe:
                        held = packet
                    continue
                batch = [packet]
                if base is None:
                    if held is not None:
                        held.dts = held.pts = packet.dts - frame_ticks
                        batch, held = [held, packet], None
                    elif not packet.is_keyframe:
                        continue  # a viewer can only start at a keyframe
                    base = batch[0].dts
                for item in batch:
                    dts = item.dts - base
                    if dts <= last_dts:
                        continue  # the muxer needs increasing timestamps; a camera's glitch is skipped
                    item.dts, item.pts, last_dts = dts, max(item.pts - base, dts), dts
                    item.stream = stream
                    self._output.mux(item)
                if sink.ready:
                    yield from sink.ready
                    sink.ready.clear()
        except av.FFmpegError as exc:
            raise MediaUnavailable(f"the camera stream broke: {describe_av_error(exc)}") from None
        except StreamEnded as exc:
            raise MediaUnavailable(f"the camera stopped sending: {exc}") from None
        finally:
            self.close()

    def close(self) -> None:
        self._closed = True
        for container in (self._output, self._container):
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()
        self._output = self._container = None


class JpegSource(LiveSource):
    """The fallback for a browser without Media Source Extensions: a JPEG of each keyframe.

    Only keyframes are decoded (the decoder skips the rest), so it costs the box one decode per
    GOP rather than per frame: a picture a second with a typical 1 s GOP, at most
    1 / JPEG_MIN_INTERVAL a second."""

    def __iter__(self) -> Iterator[bytes]:
        try:
            self._container = open_stream(self.spec, self.open_timeout, self.read_timeout)
        except StreamOpenError as exc:
            raise MediaUnavailable(f"cannot open the camera: {exc}") from None
        # OpenCV loads only when a phone without MSE asks for JPEG: a record-only box on 1 GB of
        # RAM never pays its 16 MiB and more of resident memory.
        import cv2

        jpeg_params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        decoder = self._container.streams.video[0].codec_context
        decoder.skip_frame = "NONKEY"
        next_at = 0.0
        try:
            for packet in video_packets(self._container, self.spec, loop=True, stall_seconds=STALL_SECONDS):
                if self._closed:
                    return
                if not packet.is_keyframe or time.monotonic() < next_at:
                    continue
                for frame in decoder.decode(packet):
                    ok, data = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), jpeg_params)
                    if ok:
                        next_at = time.monotonic() + JPEG_MIN_INTERVAL
                        yield data.tobytes()
        except av.FFmpegError as exc:
            raise MediaUnavailable(f"the camera stream broke: {describe_av_error(exc)}") from None
        except StreamEnded as exc:
            raise MediaUnavailable(f"the camera stopped sending: {exc}") from None
        finally:
            self.close()


def live_factory(config: AgentConfig) -> Any:
    """The `live` SourceFactory of this box's cameras."""

    def make(request: MediaRequest) -> MediaSource:
        camera = config.cameras.get(request.camera)
        if camera is None:
            raise MediaUnavailable(f"camera {request.camera!r} is not on this box")
        try:
            sources = resolve_sources(camera)
        except (ValueError, OSError) as exc:
            raise MediaUnavailable(f"camera {request.camera!r}: cannot build its stream URL: {exc}") from None
        spec = sources.main if request.stream == "main" or sources.detect is None else sources.detect
        timeouts = camera.reconnect
        kind = JpegSource if request.format == "jpeg" else LiveSource
        return kind(spec, timeouts.open_timeout_seconds, timeouts.read_timeout_seconds)

    return make
