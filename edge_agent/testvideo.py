"""Make real H.264 test video with PyAV's bundled libx264 (demo, tests and benchmarks).

The picture is a moving gradient with a frame counter burnt in, so every frame differs and a
clip's first and last frames can be identified after a round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def encode_h264(
    frames: Iterable[np.ndarray],
    path: Path,
    fps: int,
    width: int,
    height: int,
    gop: int,
    bitrate: int | None = None,
    preset: str = "veryfast",
    crf: int = 28,
) -> Path:
    """Encode BGR frames as H.264 in an MP4: a keyframe every `gop` frames, no B-frames (like cameras)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        options = {"preset": preset, "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "0"}
        if bitrate:
            stream.bit_rate = bitrate
        else:
            options["crf"] = str(crf)
        stream.codec_context.options = options
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_h264(
    path: Path,
    seconds: float = 20.0,
    fps: int = 15,
    width: int = 640,
    height: int = 360,
    gop: int | None = None,
    bitrate: int | None = None,
    preset: str = "veryfast",
) -> Path:
    """Write an H.264 MP4 with a keyframe every `gop` frames (default: every second)."""
    ys, xs = np.mgrid[0:height, 0:width]

    def frames() -> Iterator[np.ndarray]:
        for i in range(round(seconds * fps)):
            img = np.empty((height, width, 3), np.uint8)
            img[..., 0] = (xs + 4 * i) % 256
            img[..., 1] = (ys + 2 * i) % 256
            img[..., 2] = (xs + ys + 8 * i) % 256
            cv2.putText(img, f"{i:06d}", (20, height // 2), cv2.FONT_HERSHEY_SIMPLEX, height / 200, (255, 255, 255), 3)
            yield img

    return encode_h264(frames(), path, fps, width, height, gop or fps, bitrate, preset)
