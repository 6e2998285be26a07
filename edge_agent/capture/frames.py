"""Frames for analysis: decode the detection stream, sample it to the analysis fps, downscale.

Only this stream is ever decoded (the camera's sub stream when it has one); recording never
decodes. The detection issue consumes `iter_frames`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from av.video.reformatter import VideoReformatter

from edge_agent.capture.sources import StreamSpec
from edge_agent.capture.stream import open_stream, video_packets


class AnalysisFrame:
    """A decoded frame at the analysis size, converted only as far as it is used: `gray` for
    motion, `image` (BGR) when the detector runs or a snapshot is taken. An idle camera never pays
    for colour conversion, and a frame the analysis skips costs only its decoding."""

    def __init__(
        self,
        index: int,
        t: float,
        frame: Any,
        width: int,
        height: int,
        to_bgr: VideoReformatter,
        to_gray: VideoReformatter,
    ) -> None:
        self.index = index  # position of this frame in the source's decoded sequence
        self.t = t  # seconds since the start of the stream
        self.width, self.height = width, height
        self._frame = frame
        self._to_bgr, self._to_gray = to_bgr, to_gray
        self._image: np.ndarray | None = None
        self._gray: np.ndarray | None = None

    @property
    def gray(self) -> np.ndarray:
        """uint8 HxW (the decoder's luma plane, scaled), converted on first use."""
        if self._gray is None:
            self._gray = self._to_gray.reformat(self._frame, self.width, self.height, "gray").to_ndarray()
        return self._gray

    @property
    def image(self) -> np.ndarray:
        """BGR uint8 HxWx3, converted on first use."""
        if self._image is None:
            self._image = self._to_bgr.reformat(self._frame, self.width, self.height, "bgr24").to_ndarray()
        return self._image

    def image_from_another_thread(self) -> np.ndarray:
        """BGR like `image`, for a thread other than the analysis (a door's snapshot): converted with
        the frame's own scaler, never the analysis's shared one, which is not safe to share."""
        image = self._image
        if image is not None:
            return image
        return self._frame.to_ndarray(width=self.width, height=self.height, format="bgr24")  # type: ignore[no-any-return]


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
        # One per output format: each keeps its scaler context from frame to frame.
        to_gray, to_bgr = VideoReformatter(), VideoReformatter()
        packets = video_packets(container, spec, loop, read_timeout) if (spec.live or loop) else container.demux(stream)
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
                yield AnalysisFrame(index, t, frame, w, h, to_bgr, to_gray)
    finally:
        container.close()
