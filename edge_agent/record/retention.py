"""Retention: delete the oldest segments when they age out or when the disk runs low.

Two rules, whichever bites first: a per-camera age limit (7 days by default) and a storage
floor (keep at least `min_free_gb` and `min_free_percent` free). Both delete oldest first and
never touch a segment that a legal hold covers.

The age limit also covers what the camera's events left behind: snapshot day directories
whose whole day is past it (unless a hold overlaps the day), and event rows already queued for
the hub (in outbox.db) whose end is past it (unless their time overlaps a hold; an event still
open never goes).
Without it they would fill the disk a few MB a day, long after the video they illustrate is gone.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.events.snapshot_layout import snapshot_days
from edge_agent.events.store import EventStore
from edge_agent.record.index import SegmentIndex
from edge_agent.record.segment import Segment

log = logging.getLogger(__name__)

BATCH = 64


@dataclass(frozen=True)
class DiskUsage:
    total: int
    free: int


@dataclass
class RetentionReport:
    aged_out: int = 0
    evicted_for_space: int = 0
    bytes_freed: int = 0
    floor_unmet: bool = False
    snapshot_days: int = 0  # snapshot day directories removed
    events_pruned: int = 0


def disk_usage(path: Path) -> DiskUsage:
    usage = shutil.disk_usage(path)
    return DiskUsage(total=usage.total, free=usage.free)


class Retention:
    def __init__(
        self,
        root: Path,
        index: SegmentIndex,
        retain_days: dict[str, float],
        min_free_gb: float,
        min_free_percent: float,
        usage: Callable[[Path], DiskUsage] = disk_usage,
        default_days: float = 7.0,
        events: EventStore | None = None,
        events_wait_for_hub: bool = True,
    ) -> None:
        self.root = root
        self.index = index
        self.events = events
        # A box with no MQTT link never gets confirmations: its events age out unconfirmed.
        self.events_wait_for_hub = events_wait_for_hub
        self.retain_days = retain_days
        self.min_free_gb = min_free_gb
        self.min_free_percent = min_free_percent
        self.usage = usage
        self.default_days = default_days  # for cameras no longer configured that still have video
        self._lock = threading.Lock()  # one eviction at a time (retention loop vs. a full disk)
        self.total = RetentionReport()

    def floor_bytes(self, total: int) -> int:
        return max(int(self.min_free_gb * 1e9), int(total * self.min_free_percent / 100))

    def enforce(self, now: float) -> RetentionReport:
        report = RetentionReport()
        with self._lock:
            self._age_out(now, report)
            self._keep_floor(report, extra=0)
        self._add(report)
        return report

    def make_room(self) -> bool:
        """Called on ENOSPC: evict down to the floor plus some headroom. True if anything was freed."""
        report = RetentionReport()
        with self._lock:
            # On a full disk the floor is already missed; ask for a little more than the floor so
            # the writer does not hit ENOSPC again at once.
            total = self.usage(self.root).total
            self._keep_floor(report, extra=min(64 * 1024**2, total // 50), at_least_one=True)
        self._add(report)
        return report.evicted_for_space > 0

    def _age_out(self, now: float, report: RetentionReport) -> None:
        cameras = set(self.index.cameras()) | set(self.retain_days)
        for camera in sorted(cameras):
            cutoff = self.cutoff(camera, now)
            while True:
                batch = self.index.oldest_unheld(BATCH, camera=camera, before=cutoff)
                if not batch:
                    break
                report.aged_out += len(batch)
                report.bytes_freed += self._delete(batch)
                if len(batch) < BATCH:
                    break
        self._age_out_snapshots(now, report)
        self._age_out_events(now, report)

    def cutoff(self, camera: str | None, now: float) -> float:
        days = self.retain_days.get(camera, self.default_days) if camera is not None else self.default_days
        return now - days * 86400

    def _hold_windows(self) -> dict[str | None, list[tuple[float, float]]]:
        """Hold windows per camera; under None every hold (the agent's own events have no camera)."""
        windows: dict[str | None, list[tuple[float, float]]] = {None: []}
        for hold in self.index.holds():
            windows.setdefault(hold.camera, []).append((hold.start, hold.end))
            windows[None].append((hold.start, hold.end))
        return windows

    def _age_out_snapshots(self, now: float, report: RetentionReport) -> None:
        holds = self._hold_windows()
        for day in snapshot_days(self.root):
            if day.end > self.cutoff(day.camera, now):
                continue
            if any(start < day.end and end > day.start for start, end in holds.get(day.camera, [])):
                continue
            try:
                for path in day.path.iterdir():
                    size = path.stat().st_size
                    path.unlink()
                    report.bytes_freed += size
                day.path.rmdir()
            except OSError as exc:  # a stray subdirectory, permissions: say so, keep retaining
                log.warning("retention: cannot remove snapshots %s: %s", day.path, exc)
                continue
            report.snapshot_days += 1

    def _age_out_events(self, now: float, report: RetentionReport) -> None:
        if self.events is None:
            return
        holds = self._hold_windows()
        for camera in self.events.cameras():
            report.events_pruned += self.events.prune(
                camera, self.cutoff(camera, now), holds.get(camera, []), only_queued=self.events_wait_for_hub
            )

    def _keep_floor(self, report: RetentionReport, extra: int, at_least_one: bool = False) -> None:
        usage = self.usage(self.root)
        need = self.floor_bytes(usage.total) + extra
        while usage.free < need or at_least_one:
            candidates = self.index.oldest_unheld(BATCH)
            if not candidates:
                report.floor_unmet = usage.free < need
                if report.floor_unmet:
                    log.error(
                        "storage floor not met (%.1f MB free, want %.1f MB) and nothing left to evict "
                        "(no unheld segment remains; check legal holds and what else fills the disk)",
                        usage.free / 1e6,
                        need / 1e6,
                    )
                return
            # Oldest first, only as many as cover the deficit (never a whole batch for a few bytes).
            deficit, chosen = need - usage.free, []
            for segment in candidates:
                chosen.append(segment)
                deficit -= segment.bytes
                if deficit <= 0:
                    break
            report.evicted_for_space += len(chosen)
            report.bytes_freed += self._delete(chosen)
            usage = self.usage(self.root)
            at_least_one = False

    def _delete(self, segments: list[Segment]) -> int:
        freed = 0
        for segment in segments:
            path = self.root / segment.path
            try:
                freed += path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                pass
            _remove_empty_parents(path.parent, self.root)
        self.index.remove(s.path for s in segments)
        return freed

    def _add(self, report: RetentionReport) -> None:
        if report.aged_out or report.evicted_for_space or report.snapshot_days or report.events_pruned:
            log.info(
                "retention: %d segments aged out, %d evicted for space, %d snapshot days and %d events "
                "aged out, %.1f MB freed",
                report.aged_out,
                report.evicted_for_space,
                report.snapshot_days,
                report.events_pruned,
                report.bytes_freed / 1e6,
            )
        self.total.aged_out += report.aged_out
        self.total.evicted_for_space += report.evicted_for_space
        self.total.bytes_freed += report.bytes_freed
        self.total.snapshot_days += report.snapshot_days
        self.total.events_pruned += report.events_pruned
        self.total.floor_unmet = report.floor_unmet


def _remove_empty_parents(directory: Path, root: Path) -> None:
    # Hour and day directories go when their last segment does; the camera directory stays.
    for d in (directory, directory.parent):
        if d == root or d.parent == root:
            return
        try:
            os.rmdir(d)
        except OSError:
            return
