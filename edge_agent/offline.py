"""`diaolou-agent detect`: run the live pipeline on an image or a video file, print JSON lines.

Without --events: one line per analysed frame (`frame`, `t` in seconds from the start of the
file, `detections` with boxes in the file's pixels). With --events: one line per event the live
pipeline would raise (`start`, `end` in seconds from the start of the file, `label`,
`max_score`, `zone`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import av
import cv2

from edge_agent.capture.frames import iter_frames
from edge_agent.capture.sources import StreamSpec
from edge_agent.config.schema import DetectConfig
from edge_agent.detectors.base import Detection, Detector
from edge_agent.pipeline import CameraAnalyzer

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _det_json(det: Detection, scale: float) -> dict[str, object]:
    return {"box": det.box.scale(scale).as_list(), "score": round(det.score, 4), "label": det.label}


def detect_image(path: Path, detector: Detector, out: IO[str]) -> int:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not an image that can be read")
    detections = detector.detect(image)
    out.write(json.dumps({"frame": 0, "t": 0.0, "detections": [_det_json(d, 1.0) for d in detections]}) + "\n")
    return 1


def detect_video(
    path: Path, detector: Detector, settings: DetectConfig, out: IO[str], events: bool, timezone: str = "UTC"
) -> int:
    """Returns the number of lines printed. Times are seconds from the start of the file."""
    spec = StreamSpec("file", str(path), str(path))
    # A file's times start at zero, not at a time of day: an arming schedule cannot apply to it.
    settings = settings.model_copy(update={"armed": ["always"]})
    analyzer = CameraAnalyzer("offline", settings, detector, timezone)
    lines = 0
    source_width = _source_width(path)
    for frame in iter_frames(spec, settings.fps, settings.width, decode_threads=0):
        scale = source_width / frame.width  # boxes are printed in the file's pixels
        result = analyzer.process(frame, frame.t)
        if events:
            for change in result.changes:
                if change.phase == "end":
                    lines += _print_event(change.event, out)
        else:
            out.write(
                json.dumps(
                    {
                        "frame": frame.index,
                        "t": round(frame.t, 3),
                        "detections": [_det_json(d, scale) for d in result.detections],
                    }
                )
                + "\n"
            )
            lines += 1
    if events:
        for change in analyzer.finish():
            lines += _print_event(change.event, out)
    return lines


def _print_event(event: object, out: IO[str]) -> int:
    from edge_agent.events.person import PersonEvent

    assert isinstance(event, PersonEvent)
    out.write(
        json.dumps(
            {
                "start": round(event.start, 3),
                "end": round(event.end if event.end is not None else event.last_seen, 3),
                "label": event.label,
                "max_score": round(event.max_score, 4),
                "zone": event.zone,
                "persons": len(event.track_ids),
            }
        )
        + "\n"
    )
    out.flush()
    return 1


def _source_width(path: Path) -> int:
    with av.open(str(path)) as container:
        return int(container.streams.video[0].codec_context.width)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES
