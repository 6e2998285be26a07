"""One camera's capture loop: connect, record, reconnect with backoff, report status and events.

Each camera runs in its own thread and catches everything a camera can throw at it (refused
connection, 401, unsupported codec, corrupt data, a server that goes silent), so one bad camera
never stops the others.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import av

from edge_agent.capture.backoff import Backoff
from edge_agent.capture.sources import CameraSources
from edge_agent.capture.stream import (
    StreamEnded,
    StreamOpenError,
    describe_av_error,
    open_stream,
    video_packets,
)
from edge_agent.capture.timestamps import TimestampSanitizer
from edge_agent.clock import WallClock
from edge_agent.config.schema import CameraConfig
from edge_agent.events.store import EventStore
from edge_agent.record.recorder import SegmentRecorder, UnsupportedCodec

# How long a live camera's packets may gather in the socket before the recorder reads them
# (see capture.stream._live_packets); it bounds how late a segment's first packet is stamped.
READ_BATCH_SECONDS = 0.2

log = logging.getLogger(__name__)


@dataclass
class CameraStatus:
    camera: str
    source: str
    state: str = "starting"  # starting | online | offline | error | stopped
    since: float = 0.0
    last_error: str | None = None
    reconnects: int = 0
    packets: int = 0
    fps: float = 0.0
    timestamp_repairs: int = 0
    segments: int = 0
    bytes: int = 0
    dropped_packets: int = 0
    disk_full_events: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CameraWorker(threading.Thread):
    def __init__(
        self,
        name: str,
        config: CameraConfig,
        sources: CameraSources,
        recorder: SegmentRecorder | None,
        clock: WallClock,
        events: EventStore,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"camera-{name}", daemon=True)
        self.camera = name
        self.config = config
        self.sources = sources
        self.recorder = recorder
        self.clock = clock
        self.events = events
        self.stop_event = stop
        self.status = CameraStatus(camera=name, source=sources.main.display, since=clock.now())
        self._was_online = False
        self._offline_reported = False
        self.batch_seconds = READ_BATCH_SECONDS
        buffer = sources.main.udp_buffer
        if buffer is not None and buffer.capped:
            # A batch of a high bit rate camera overflows a capped buffer: read each frame as it comes.
            self.batch_seconds = 0.0
            log.warning(
                "camera %s: RTSP over UDP: the kernel grants a receive buffer of %d bytes, %d asked "
                "(net.core.rmem_max); reading frame by frame, and a high bit rate may still lose packets: "
                "sysctl net.core.rmem_max=%d, or transport: tcp (docs/recording.md)",
                name,
                buffer.granted,
                buffer.asked,
                buffer.asked,
            )

    def run(self) -> None:
        backoff = Backoff(self.config.reconnect.initial_seconds, self.config.reconnect.max_seconds)
        while not self.stop_event.is_set():
            try:
                self._session(backoff)
            except UnsupportedCodec as exc:
                self._down("error", str(exc))
                backoff._next = backoff.maximum  # misconfigured camera: retry rarely
            except StreamOpenError as exc:
                self._down("offline", str(exc))
            except StreamEnded as exc:
                self._down("offline", str(exc))
            except av.FFmpegError as exc:
                self._down("offline", f"{self.sources.main.display}: {describe_av_error(exc)}")
            except Exception as exc:
                log.exception("camera %s: unexpected error", self.camera)
                self._down("error", f"{type(exc).__name__}: {exc}")
            if self.stop_event.is_set():
                break
            delay = backoff.next_delay()
            self.status.reconnects += 1
            log.info("camera %s: reconnecting in %.1f s", self.camera, delay)
            self.stop_event.wait(delay)
        self.status.state = "stopped"

    def _session(self, backoff: Backoff) -> None:
        spec = self.sources.main
        container = open_stream(
            spec, self.config.reconnect.open_timeout_seconds, self.config.reconnect.read_timeout_seconds
        )
        try:
            stream = container.streams.video[0]
            if self.recorder is not None:
                self.recorder.set_stream(stream)
            sanitizer = TimestampSanitizer(stream.time_base, float(stream.average_rate or 0) or None)
            # The loop runs for every packet of every camera all day: names are bound once.
            stopping, now, status = self.stop_event.is_set, self.clock.now, self.status
            feed = self.recorder.feed if self.recorder is not None else None
            last_arrival: float | None = None
            window_start, window_packets = now(), 0
            read_timeout = self.config.reconnect.read_timeout_seconds
            packets = video_packets(
                container,
                spec,
                loop=True,
                stall_seconds=read_timeout,
                complete_only=True,
                batch_seconds=self.batch_seconds,
            )
            for packet in packets:
                if stopping():
                    break
                arrival = now()
                stamped = sanitizer(packet.pts, packet.dts, None if last_arrival is None else arrival - last_arrival)
                last_arrival = arrival
                if status.state != "online":
                    self._up(arrival)
                    backoff.reset()
                if feed is not None:
                    feed(packet, stamped, arrival)
                status.packets += 1
                window_packets += 1
                if arrival - window_start >= 5.0:
                    status.fps = round(window_packets / (arrival - window_start), 2)
                    window_start, window_packets = arrival, 0
                    self._copy_recorder_stats(sanitizer)
        finally:
            if self.recorder is not None:
                self.recorder.close(self.clock.now())
                self._copy_recorder_stats(None)
            container.close()

    def _copy_recorder_stats(self, sanitizer: TimestampSanitizer | None) -> None:
        if sanitizer is not None:
            self.status.timestamp_repairs = sanitizer.repairs
        if self.recorder is not None:
            stats = self.recorder.stats
            self.status.segments = stats.segments
            self.status.bytes = stats.bytes
            self.status.dropped_packets = stats.dropped_packets
            self.status.disk_full_events = stats.disk_full_events

    def _up(self, now: float) -> None:
        self.status.state, self.status.since, self.status.last_error = "online", now, None
        log.info("camera %s: online (%s)", self.camera, self.sources.main.display)
        if self._offline_reported:
            self.events.record("camera_back", self.camera, now)
            self._offline_reported = False
        self._was_online = True

    def _down(self, state: str, error: str) -> None:
        now = self.clock.now()
        changed = self.status.state != state or self.status.last_error != error
        self.status.state, self.status.last_error = state, error
        if changed:
            self.status.since = now
            log.error("camera %s: %s: %s", self.camera, state, error)
        if not self._offline_reported:
            # One event per outage, not one per failed reconnect attempt.
            self.events.record("camera_offline", self.camera, now, reason=error, state=state)
            self._offline_reported = True
