"""Where event snapshots live: <root>/snapshots/<camera>/<YYYY-MM-DD>/<event id>[-crop].jpg (UTC day).

Apart from the JPEG writer (snapshots.py) so that retention can walk the days without loading
OpenCV: a record-only agent never imports it (about 16 MiB of resident memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SNAPSHOTS_DIR = "snapshots"
DAY_FORMAT = "%Y-%m-%d"


def snapshot_dir(camera: str, t: float) -> Path:
    """The directory, relative to the storage root, for snapshots of an event starting at `t`."""
    return Path(SNAPSHOTS_DIR) / camera / datetime.fromtimestamp(t, UTC).strftime(DAY_FORMAT)


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
                start = datetime.strptime(day_dir.name, DAY_FORMAT).replace(tzinfo=UTC).timestamp()
            except ValueError:
                continue
            days.append(SnapshotDay(camera_dir.name, start, day_dir))
    return sorted(days, key=lambda d: d.start)
