"""Where a segment lives: <root>/<camera>/<YYYY-MM-DD>/<HH>/<MM.SS>.mp4, all in UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

PART_SUFFIX = ".part"
_REL = re.compile(
    r"^(?P<camera>[a-z0-9][a-z0-9_-]{0,62})/(?P<date>\d{4}-\d{2}-\d{2})/(?P<hour>\d{2})/"
    r"(?P<minute>\d{2})\.(?P<second>\d{2})(?:-(?P<n>\d+))?\.mp4$"
)


def segment_relpath(camera: str, start: float, root: Path | None = None) -> str:
    """The relative path for a segment starting at `start` (epoch seconds, UTC).

    Two segments can start within the same second (a reconnect, the clock stepping back);
    with `root` given, a free name with a -N suffix is chosen.
    """
    dt = datetime.fromtimestamp(start, UTC)
    base = f"{camera}/{dt:%Y-%m-%d}/{dt:%H}/{dt:%M.%S}"
    rel = base + ".mp4"
    n = 0
    while root is not None and ((root / rel).exists() or (root / (rel + PART_SUFFIX)).exists()):
        n += 1
        rel = f"{base}-{n}.mp4"
    return rel


def parse_relpath(rel: str) -> tuple[str, float] | None:
    """(camera, start second) from a relative segment path, or None if it is not one of ours."""
    m = _REL.match(rel)
    if m is None:
        return None
    try:
        dt = datetime.strptime(f"{m['date']} {m['hour']}:{m['minute']}:{m['second']}", "%Y-%m-%d %H:%M:%S").replace(
            tzinfo=UTC
        )
    except ValueError:
        return None
    return m["camera"], dt.timestamp()
