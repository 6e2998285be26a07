"""Event snapshots as JPEG: the full frame with the person's box drawn, and a crop of the person."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from edge_agent.events.person import PersonEvent

JPEG_QUALITY = 85
SNAPSHOTS_DIR = "snapshots"  # <root>/snapshots/<camera>/<YYYY-MM-DD>/<event id>[-crop].jpg


@dataclass(frozen=True)
class SnapshotFiles:
    full: str  # relative to the storage root
    crop: str


def write_snapshot(root: Path, event: PersonEvent) -> SnapshotFiles | None:
    snap = event.snapshot
    if snap is None:
        return None
    day = datetime.fromtimestamp(event.start, UTC).strftime("%Y-%m-%d")
    rel_dir = Path(SNAPSHOTS_DIR) / event.camera / day
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
    _write_jpeg(root / files.full, frame)
    if crop.size:
        _write_jpeg(root / files.crop, crop)
    return files


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"could not encode {path.name}")
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)


@dataclass(frozen=True)
class SnapshotDay:
    camera: str
    start: float  # 00:00 UTC of the day, as a Unix time
    path: Path

    @property
    def end(self) -> float:
        return self.start + 86400


def snapshot_days(root: Path) -> list[SnapshotDay]:
    """Every camera's snapshot day directories, oldest first; names that are not dates are skipped."""
    days = []
    base = root / SNAPSHOTS_DIR
    for camera_dir in sorted(base.iterdir()) if base.is_dir() else []:
        for day_dir in sorted(camera_dir.iterdir()) if camera_dir.is_dir() else []:
            try:
                start = datetime.strptime(day_dir.name, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
            except ValueError:
                continue
            days.append(SnapshotDay(camera_dir.name, start, day_dir))
    return sorted(days, key=lambda d: d.start)
