"""Frames for analysis: decode the detection stream, sample it to the analysis fps, downscale.

Only this stream is ever decoded (the camera's sub stream when it has one); recording never
decodes. The detection issue consumes `iter_frames`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from av.video.reformatter import VideoReformatter

from edge_agent.capture.sources import StreamSpec
from edge_agent.capture.stream import open_stream, video_packets


@dataclass(frozen=True)
class AnalysisFrame:
    index: int  # position of this frame in the source's decoded sequence
    t: float  # seconds since the start of the stream
    image: np.ndarray  # BGR, uint8, downscaled to the analysis width

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def scaled_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    if width <= target_width:
        return width, height
    h = max(2, round(height * target_width / width / 2) * 2)
    return target_width, h


def iter_frames(
    spec: StreamSpec,
    fps: float,
    width: int,
    open_timeout: float = 10.0,
    read_timeout: float = 10.0,
    loop: bool = False,
    decode_threads: int = 1,
) -> Iterator[AnalysisFrame]:
    """Decoded frames at most `fps` per second, at most `width` wide.

    A file is read as fast as it decodes (offline analysis) unless `loop` asks for live-like
    looping, which also paces it to real time. Live cameras decode with one thread
    (`decode_threads=0` lets FFmpeg choose): on a small sub stream, frame threads cost more
    CPU and memory than they save.
    """
    container = open_stream(spec, open_timeout, read_timeout)
    try:
        stream = container.streams.video[0]
        if decode_threads == 1:
            stream.codec_context.thread_count = 1
        else:
            stream.thread_type = "AUTO"
        reformatter = VideoReformatter()  # keeps its scaler context from frame to frame
        packets = video_packets(container, spec, loop=loop) if (spec.live or loop) else container.demux(stream)
        step = 1.0 / fps
        next_t: float | None = None
        first: float | None = None
        index = -1
        for packet in packets:
            for frame in packet.decode():
                index += 1
                if frame.pts is None:
                    continue
                t = float(frame.pts * frame.time_base)
                if first is None:
                    first = t
                t -= first
                if next_t is not None and t + 1e-6 < next_t:
                    continue
                next_t = (next_t if next_t is not None else t) + step
                if t > next_t:  # fell behind (gap): realign rather than burst
                    next_t = t + step
                w, h = scaled_size(frame.width, frame.height, width)
                image = reformatter.reformat(frame, w, h, "bgr24").to_ndarray()
                yield AnalysisFrame(index=index, t=t, image=image)
    finally:
        container.close()
