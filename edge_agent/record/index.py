"""The ring-buffer index: segments and legal holds in SQLite (sqlite-utils, WAL).

The files on disk are the truth; the index is a fast, repairable view of them. That lets
segment rows be batched (one small commit every `index_flush_seconds`, kind to SD cards):
a crash before a flush loses no recording, because the repair on start re-indexes files
the index does not know.

Each row also keeps the segment's size and SHA-256 as finished, and `damage`: why the file no
longer matches them or cannot be read (None while it is intact). A damaged row stays (its file
is evidence of what happened and retention deletes it in its time) but counts as a gap.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sqlite_utils

from edge_agent.record.segment import Segment

INDEX_NAME = "index.db"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hold:
    id: int
    camera: str
    start: float
    end: float
    reason: str
    created: float


class SegmentIndex:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / INDEX_NAME
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        # Keep the write-ahead log small: it shares the disk (often an SD card) with the video.
        self.db.execute("PRAGMA wal_autocheckpoint=64")
        self.db.execute("PRAGMA journal_size_limit=262144")
        # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt the file;
        # lost rows come back from the files.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.RLock()
        self._pending: dict[str, Segment] = {}
        self._ensure_schema()

    def _ensure_schema(self) -> None:
        with self._lock:
            if "segments" not in self.db.table_names():
                self.db.table("segments").create(
                    {
                        "path": str,
                        "camera": str,
                        "start": float,
                        "end": float,
                        "duration": float,
                        "bytes": int,
                        "codec": str,
                        "width": int,
                        "height": int,
                        "keyframes": int,
                        "salvaged": int,
                        # Filled by the detection issue: share of frames with motion, persons seen.
                        "motion": float,
                        "persons": int,
                        "sha256": str,
                        "damage": str,
                    },
                    pk="path",
                    not_null={"camera", "start", "end"},
                )
                self.db.table("segments").create_index(["camera", "start"])
                self.db.table("segments").create_index(["start"])
            # An index.db from before hashes: add the columns in place; rows without a hash get one
            # when they are first checked (integrity.py).
            columns = self.db.table("segments").columns_dict
            for name in ("sha256", "damage"):
                if name not in columns:
                    self.db.table("segments").add_column(name, str)
            if "holds" not in self.db.table_names():
                self.db.table("holds").create(
                    {"id": int, "camera": str, "start": float, "end": float, "reason": str, "created": float},
                    pk="id",
                )

    # --- segments -------------------------------------------------------------------------
    def add(self, segment: Segment) -> None:
        """Queue a finished segment; `flush` writes the queue in one transaction."""
        with self._lock:
            self._pending[segment.path] = segment

    def flush(self) -> int:
        with self._lock:
            if not self._pending:
                return 0
            # `damage` is only ever set by `mark_damaged`: a queued row must not clear it.
            rows = [{k: v for k, v in s.row().items() if k != "damage"} for s in self._pending.values()]
            try:
                with self.db.conn:
                    self.db.table("segments").upsert_all(rows, pk="path", alter=False)
            except sqlite3.OperationalError as exc:
                if "full" not in str(exc):
                    raise
                # Disk full: keep the rows queued for the next flush; if the process dies first,
                # the start-up repair re-indexes the files. Never lose video over its index.
                log.warning("index not written (%s); %d segments stay queued", exc, len(rows))
                return 0
            self._pending.clear()
            return len(rows)

    def set_activity(self, path: str, motion: float, persons: int) -> None:
        """Fill a segment's motion/persons columns (from the analysis of its time span)."""
        with self._lock:
            pending = self._pending.get(path)
            if pending is not None:
                self._pending[path] = replace(pending, motion=motion, persons=persons)
                return
            with self.db.conn:
                self.db.execute("update segments set motion = ?, persons = ? where path = ?", [motion, persons, path])

    def mark_damaged(self, path: str, damage: str | None) -> None:
        """Record what is wrong with a segment's file (None: it is intact again)."""
        self.flush()
        with self._lock, self.db.conn:
            self.db.execute("update segments set damage = ? where path = ?", [damage, path])

    def set_sha256(self, path: str, sha256: str) -> None:
        """Give a row indexed without a hash (by an older version) the hash of its file."""
        self.flush()
        with self._lock, self.db.conn:
            self.db.execute("update segments set sha256 = ? where path = ? and sha256 is null", [sha256, path])

    def newest(self, per_camera: int) -> list[Segment]:
        """The newest `per_camera` segments of every camera, newest first."""
        self.flush()
        sql = (
            "select * from (select *, row_number() over (partition by camera order by start desc) as n "
            "from segments) where n <= ? order by start desc"
        )
        with self._lock:
            return [Segment.from_row(r) for r in self.db.query(sql, [per_camera])]

    def fingerprints(self) -> dict[str, tuple[int, str | None]]:
        """path: (bytes, damage) of every segment, for a quick size check against the disk."""
        with self._lock:
            query = self.db.query("select path, bytes, damage from segments")
            rows = {r["path"]: (r["bytes"], r["damage"]) for r in query}
            rows.update({s.path: (s.bytes, None) for s in self._pending.values()})
            return rows

    @property
    def pending(self) -> int:
        return len(self._pending)

    def segments(self, camera: str, start: float, end: float) -> list[Segment]:
        """Segments of `camera` overlapping [start, end], oldest first (pending ones included).

        Damaged ones are included, with their `damage`: the timeline shows them as gaps."""
        with self._lock:
            rows = self.db.query(
                "select * from segments where camera = ? and end > ? and start < ? order by start",
                [camera, start, end],
            )
            found = {r["path"]: Segment.from_row(r) for r in rows}
            for seg in self._pending.values():
                if seg.camera == camera and seg.end > start and seg.start < end:
                    found[seg.path] = seg
        return sorted(found.values(), key=lambda s: s.start)

    def known_paths(self) -> set[str]:
        with self._lock:
            paths = {r["path"] for r in self.db.query("select path from segments")}
            return paths | set(self._pending)

    def newest_end(self) -> float:
        with self._lock:
            row = next(self.db.query("select max(end) as t from segments"), None)
            return float(row["t"]) if row and row["t"] is not None else 0.0

    def spans(self, cameras: Iterable[str]) -> dict[str, tuple[float, float]]:
        """Per camera, the start of its oldest kept segment and the end of its newest (held ones
        included): what the box can still cut a clip from. One indexed lookup per end and camera,
        cheap enough for every heartbeat."""
        found: dict[str, tuple[float, float]] = {}
        with self._lock:
            for camera in cameras:
                first = next(self.db.query("select min(start) as t from segments where camera = ?", [camera]))["t"]
                if first is None:
                    continue
                last = next(self.db.query("select max(start) as s from segments where camera = ?", [camera]))["s"]
                end = next(self.db.query("select end from segments where camera = ? and start = ?", [camera, last]))
                found[camera] = (float(first), float(end["end"]))
        return found

    def cameras(self) -> list[str]:
        with self._lock:
            return [r["camera"] for r in self.db.query("select distinct camera from segments order by camera")]

    def remove(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        with self._lock:
            for p in paths:
                self._pending.pop(p, None)
            with self.db.conn:
                self.db.conn.executemany("delete from segments where path = ?", [(p,) for p in paths])

    def oldest_unheld(self, limit: int, camera: str | None = None, before: float | None = None) -> list[Segment]:
        """The oldest segments that no active hold covers, optionally of one camera / ending before."""
        self.flush()
        sql = (
            "select s.* from segments s where not exists (select 1 from holds h where h.camera = s.camera "
            "and h.start < s.end and h.end > s.start)"
        )
        args: list[object] = []
        if camera is not None:
            sql += " and s.camera = ?"
            args.append(camera)
        if before is not None:
            sql += " and s.end < ?"
            args.append(before)
        sql += " order by s.start limit ?"
        args.append(limit)
        with self._lock:
            return [Segment.from_row(r) for r in self.db.query(sql, args)]

    def totals(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = self.db.query(
                "select camera, count(*) as segments, sum(bytes) as bytes, min(start) as first, "
                "max(end) as last, count(damage) as damaged from segments group by camera"
            )
            return {r.pop("camera"): r for r in rows}

    # --- legal holds ----------------------------------------------------------------------
    def add_hold(self, camera: str, start: float, end: float, reason: str) -> Hold:
        if end <= start:
            raise ValueError("a hold's end must be after its start")
        created = time.time()
        with self._lock, self.db.conn:
            table = self.db.table("holds")
            table.insert({"camera": camera, "start": start, "end": end, "reason": reason, "created": created})
            hold_id = int(str(table.last_pk))
        return Hold(hold_id, camera, start, end, reason, created)

    def release_hold(self, hold_id: int) -> bool:
        with self._lock, self.db.conn:
            cursor = self.db.execute("delete from holds where id = ?", [hold_id])
            return cursor.rowcount > 0

    def holds(self, camera: str | None = None) -> list[Hold]:
        sql, args = "select * from holds", []
        if camera is not None:
            sql, args = sql + " where camera = ?", [camera]
        with self._lock:
            return [Hold(**r) for r in self.db.query(sql + " order by id", args)]

    def close(self) -> None:
        self.flush()
        self.db.conn.close()
