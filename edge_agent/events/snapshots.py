"""Event snapshots as JPEG: the full frame with the person's box drawn, and a crop of the person."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_agent.events.person import PersonEvent
from edge_agent.events.snapshot_layout import snapshot_dir

JPEG_QUALITY = 85
SMALLER_QUALITIES = (70, 55, 40)  # tried in turn when a snapshot must fit a size


@dataclass(frozen=True)
class SnapshotFiles:
    full: str  # relative to the storage root
    crop: str


def write_snapshot(root: Path, event: PersonEvent) -> SnapshotFiles | None:
    snap = event.snapshot
    if snap is None:
        return None
    rel_dir = snapshot_dir(event.camera, event.start)
    (root / rel_dir).mkdir(parents=True, exist_ok=True)
    frame = snap.frame.copy()
    h, w = frame.shape[:2]
    b = snap.box
    x1, y1 = max(0, int(b.x1)), max(0, int(b.y1))
    x2, y2 = min(w, round(b.x2)), min(h, round(b.y2))
    pad_x, pad_y = int(0.15 * (x2 - x1)), int(0.1 * (y2 - y1))
    crop = snap.frame[max(0, y1 - pad_y) : min(h, y2 + pad_y), max(0, x1 - pad_x) : min(w, x2 + pad_x)]
    thickness = max(2, w // 320)
    cv2.rectangle(frame, (x1, y1), (x2, y2), (0, 0, 255), thickness)
    cv2.putText(
        frame,
        f"{event.label} {snap.score:.2f}",
        (x1, max(12, y1 - 6)),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.5 * thickness / 2,
        (0, 0, 255),
        max(1, thickness // 2),
    )
    files = SnapshotFiles(full=str(rel_dir / f"{event.id}.jpg"), crop=str(rel_dir / f"{event.id}-crop.jpg"))
    write_jpeg(root / files.full, frame)
    if crop.size:
        write_jpeg(root / files.crop, crop)
    return files


def write_jpeg(path: Path, image: np.ndarray, max_bytes: int | None = None) -> bytes:
    """Write `image` as a JPEG (atomically) and return its bytes. With `max_bytes` the quality steps
    down until it fits: a snapshot over the wire's limit would be refused at the hub."""
    for quality in (JPEG_QUALITY, *SMALLER_QUALITIES):
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError(f"could not encode {path.name}")
        data = encoded.tobytes()
        if max_bytes is None or len(data) <= max_bytes:
            break
    else:
        raise ValueError(f"{path.name}: {len(data)} bytes even at quality {SMALLER_QUALITIES[-1]}")
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return data
