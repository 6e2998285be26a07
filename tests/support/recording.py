"""Record a video file into a ring buffer without real-time pacing, with arrival times derived
from the file's timestamps (deterministic, fast): the same recorder the agent runs."""

from __future__ import annotations

from pathlib import Path

import av

from edge_agent.capture.timestamps import TimestampSanitizer
from edge_agent.config.schema import RecordConfig
from edge_agent.record.index import SegmentIndex
from edge_agent.record.recorder import SegmentRecorder
from edge_agent.record.segment import Segment


def record_file(
    root: Path,
    index: SegmentIndex,
    video: Path,
    camera: str = "cam",
    start: float = 1_790_000_000.0,
    segment_seconds: float = 4.0,
    stop_after: float | None = None,
) -> list[Segment]:
    made: list[Segment] = []
    recorder = SegmentRecorder(
        root, camera, RecordConfig(segment_seconds=segment_seconds), index, on_segment=made.append
    )
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        recorder.set_stream(stream)
        sanitizer = TimestampSanitizer(stream.time_base, float(stream.average_rate or 0))
        last = start
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            stamped = sanitizer(packet.pts, packet.dts)
            arrival = start + sanitizer.seconds(stamped.dts)
            if stop_after is not None and arrival - start >= stop_after:
                break
            recorder.feed(packet, stamped, arrival)
            last = arrival
        recorder.close(last + 1.0)
    index.flush()
    return made
