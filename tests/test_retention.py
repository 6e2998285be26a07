"""Retention: age limit and storage floor, oldest first, never what is on legal hold; disk full."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_agent.detectors.base import Box
from edge_agent.events.ids import new_event_id
from edge_agent.events.person import EventChange, PersonEvent, Snapshot
from edge_agent.events.snapshots import write_snapshot
from edge_agent.events.store import EventStore
from edge_agent.record import segment as segment_module
from edge_agent.record.index import SegmentIndex
from edge_agent.record.recorder import SegmentRecorder
from edge_agent.record.retention import DiskUsage, Retention
from edge_agent.record.segment import iso
from tests.conftest import agent_cmd, ffmpeg_decodes
from tests.support.recording import record_file

DAY = 86400.0
START = 1_790_000_000.0


def fill(root: Path, index: SegmentIndex, video: Path, camera: str, starts: list[float]) -> None:
    for start in starts:
        record_file(root, index, video, camera=camera, start=start, segment_seconds=4, stop_after=4)


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.mp4"))


def test_age_limit_per_camera_deletes_oldest_and_spares_holds(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    index = SegmentIndex(root)
    days_ago = [9, 8, 6.5, 2, 0.1]
    fill(root, index, h264_file, "shop", [START - d * DAY for d in days_ago])
    fill(root, index, h264_file, "lane", [START - d * DAY for d in days_ago])
    held = index.add_hold("shop", START - 9 * DAY - 1, START - 9 * DAY + 2, "case 2026-117")
    retention = Retention(root, index, {"shop": 7, "lane": 3}, min_free_gb=0, min_free_percent=0)
    report = retention.enforce(now=START)
    kept = {
        (s.camera, round((START - s.start) / DAY, 1))
        for cam in ("shop", "lane")
        for s in index.segments(cam, 0, START + 10)
    }
    # shop keeps 7 days plus the held 9-day-old segment; lane keeps 3 days.
    assert kept == {("shop", 9.0), ("shop", 6.5), ("shop", 2.0), ("shop", 0.1), ("lane", 2.0), ("lane", 0.1)}
    assert report.aged_out == 4
    assert len(files(root)) == 6  # the files went with the rows
    # Released, the old segment goes at the next pass.
    assert index.release_hold(held.id)
    retention.enforce(now=START)
    assert len(index.segments("shop", 0, START + 10)) == 3


def test_storage_floor_evicts_oldest_across_cameras(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    index = SegmentIndex(root)
    fill(root, index, h264_file, "a", [START - 300, START - 100])
    fill(root, index, h264_file, "b", [START - 200, START - 50])
    index.add_hold("a", START - 301, START - 290, "evidence")
    sizes = {s.path: s.bytes for cam in "ab" for s in index.segments(cam, 0, START)}

    def usage(path: Path) -> DiskUsage:
        used = sum(p.stat().st_size for p in root.rglob("*.mp4"))
        return DiskUsage(total=10 * 10**9, free=10**9 - used)

    # Floor: 1 GB free. Free is 1 GB minus what is recorded: every unheld segment must go, oldest
    # first, and the held one stays even though the floor is still missed.
    retention = Retention(root, index, {}, min_free_gb=1.0, min_free_percent=0, usage=usage)
    report = retention.enforce(now=START)
    assert report.evicted_for_space == 3 and report.aged_out == 0
    assert report.floor_unmet
    assert index.oldest_unheld(10) == []
    held = [p for p in sizes if p.startswith("a/2026-09-21/14/08")]
    assert files(root) == held and len(held) == 1


def test_floor_evicts_only_what_the_deficit_needs(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    index = SegmentIndex(root)
    fill(root, index, h264_file, "a", [START - 400, START - 300, START - 200, START - 100])
    segments = index.segments("a", 0, START)
    total = 100 * 1024**3
    floor = total * 5 // 100

    def usage(path: Path) -> DiskUsage:
        # Short of the floor by a bit more than one segment until the two oldest are gone.
        present = sum((root / s.path).stat().st_size for s in segments if (root / s.path).exists())
        all_bytes = sum(s.bytes for s in segments)
        return DiskUsage(total=total, free=floor - (segments[0].bytes + 10) + (all_bytes - present))

    retention = Retention(root, index, {}, min_free_gb=0, min_free_percent=5, usage=usage)
    report = retention.enforce(now=START)
    assert report.evicted_for_space == 2
    assert [s.start for s in index.segments("a", 0, START)] == [START - 200, START - 100]


def test_injected_disk_full_keeps_recording(tmp_path: Path, h264_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC in the middle of a segment: the written part is kept, old video evicted, recording goes on."""
    root = tmp_path / "rec"
    index = SegmentIndex(root)
    fill(root, index, h264_file, "cam", [START - 1000, START - 900])
    calls = {"n": 0}
    real_write = segment_module.SegmentWriter.write

    def flaky_write(self: segment_module.SegmentWriter, *args: object, **kw: object) -> None:
        calls["n"] += 1
        if calls["n"] == 100:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(segment_module.SegmentWriter, "write", flaky_write)
    retention = Retention(root, index, {}, min_free_gb=0, min_free_percent=0)
    evictions: list[bool] = []

    def make_room() -> bool:
        evictions.append(retention.make_room())
        return evictions[-1]

    original_init = SegmentRecorder.__init__

    def init(self: SegmentRecorder, *a: object, **kw: object) -> None:
        original_init(self, *a, **kw)  # type: ignore[arg-type]
        self.make_room = make_room

    monkeypatch.setattr(SegmentRecorder, "__init__", init)
    made = record_file(root, index, h264_file, camera="cam", start=START, segment_seconds=4, stop_after=20)
    assert evictions == [True]
    # Only the oldest segment went to make room.
    assert [s.start for s in index.segments("cam", START - 1001, START - 890)] == [START - 900]
    # Packet 100 (6.6 s) failed: the segment in progress was kept up to there, then recording resumed
    # at the next keyframe; no .part is left behind.
    assert not list(root.rglob("*.part"))
    assert any(s.salvaged for s in made)
    covered = sum(s.duration for s in made)
    assert 17 <= covered < 20
    for s in made:
        ok, errors = ffmpeg_decodes(root / s.path)
        assert ok, errors


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("the disk-full test mounts a tmpfs and needs root (CI runs as root)")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_real_full_filesystem_never_crashes_the_agent(tiny_fs: Path, h264_file: Path, tmp_path: Path) -> None:
    """A filesystem with room for ~20 s of video, recorded for 30 s: the agent runs on, evicts the
    oldest, and says so."""
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(
        f"storage: {{root: {tiny_fs}, min_free_gb: 0, min_free_percent: 0, retention_interval_seconds: 3600,"
        f" index_flush_seconds: 1}}\n"
        f"cameras:\n  cam: {{source: {h264_file}, record: {{segment_seconds: 2}}}}\n"
    )
    # Fill the disk faster than real time: a big file takes most of the space first.
    import shutil

    (tiny_fs / "ballast").write_bytes(b"\0" * (shutil.disk_usage(tiny_fs).free - 800_000))
    proc = subprocess.run(
        agent_cmd("run", "--config", str(cfg), "--seconds", "30"), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "disk full while recording" in proc.stderr
    assert "evict" in proc.stderr
    segs = sorted(tiny_fs.rglob("*.mp4"))
    assert segs, proc.stderr[-2000:]
    for seg in segs:
        ok, errors = ffmpeg_decodes(seg)
        assert ok, errors
    # The newest video is there (recording went on after the disk filled).
    index = SegmentIndex(tiny_fs)
    newest = max(s.end for s in index.segments("cam", 0, 4e9))
    oldest = min(s.start for s in index.segments("cam", 0, 4e9))
    assert newest - oldest < 29
    print(iso(oldest), iso(newest))


def person_event(
    store: EventStore, root: Path, camera: str, start: float, end: float | str | None = "5 s later"
) -> PersonEvent:
    """A person event as analysis leaves it, queued for the hub: a row in events.db and its two
    snapshot JPEGs. `end`: when it ended (None: still open); by default 5 s after it started."""
    frame = np.full((180, 320, 3), 90, np.uint8)
    ended = start + 5 if isinstance(end, str) else end
    event = PersonEvent(new_event_id(start), camera, None, start, start + 5, "test", end=ended)
    event.snapshot = Snapshot(0.9, start + 1, Box(100, 40, 160, 170), frame)
    write_snapshot(root, event)
    saved = EventChange("end", event).local_event(None, pre_roll=0, post_roll=0)
    store.save(saved)
    store.mark_queued(saved)
    return event


def test_snapshots_and_events_age_out_with_their_camera_but_not_under_a_hold(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    index, store = SegmentIndex(root), EventStore(root)
    old = {cam: [person_event(store, root, cam, START - d * DAY) for d in (10, 9)] for cam in ("shop", "lane")}
    recent = [person_event(store, root, cam, START - 2 * DAY) for cam in ("shop", "lane")]
    unsent = store.record("camera_offline", "shop", START - 9 * DAY)  # never reached the hub
    store.mark_queued(store.record("camera_offline", "shop", START - 10 * DAY - 60))
    index.add_hold("lane", START - 9 * DAY - 1, START - 9 * DAY + 2, "case 2026-118")

    # What an installer might leave in there: a folder that is not a day, and a day holding a folder.
    (root / "snapshots" / "shop" / "exported").mkdir()
    stray_day = root / "snapshots" / "lane" / "2020-01-01"
    (stray_day / "copies").mkdir(parents=True)

    retention = Retention(root, index, {"shop": 7, "lane": 3}, min_free_gb=0, min_free_percent=0, events=store)
    report = retention.enforce(now=START)
    assert (root / "snapshots" / "shop" / "exported").is_dir()  # not a day: never touched
    assert (stray_day / "copies").is_dir()  # cannot be emptied: skipped with a warning, the rest goes on

    def has_snapshot(event: PersonEvent) -> bool:
        return any((root / "snapshots" / event.camera).rglob(f"{event.id}*.jpg"))

    gone = [*old["shop"], old["lane"][0]]
    kept = [old["lane"][1], *recent]  # lane's 9-day-old event is on hold
    assert [has_snapshot(e) for e in gone] == [False] * 3
    assert [has_snapshot(e) for e in kept] == [True] * 3
    assert {e.id for e in store.list()} == {e.id for e in kept} | {unsent.id}
    assert (report.snapshot_days, report.events_pruned) == (3, 4)
    # The emptied day directories went too: shop has only the recent day left (and the stray folder).
    assert sorted(d.name for d in (root / "snapshots" / "shop").iterdir()) == [iso(START - 2 * DAY)[:10], "exported"]
    # Nothing left to do: a second pass removes nothing.
    assert retention.enforce(now=START).events_pruned == 0
    # A stand-alone box (no MQTT link) never gets confirmations: its old events go unconfirmed.
    standalone = Retention(
        root, index, {"shop": 7}, min_free_gb=0, min_free_percent=0, events=store, events_wait_for_hub=False
    )
    assert standalone.enforce(now=START).events_pruned == 1
    assert unsent.id not in {e.id for e in store.list()}


def test_events_age_by_their_end_so_one_running_into_a_hold_stays(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    index, store = SegmentIndex(root), EventStore(root)
    hold_start = START - 9 * DAY
    index.add_hold("shop", hold_start, hold_start + 3600, "case 2026-121")
    into_hold = person_event(store, root, "shop", hold_start - 1800, hold_start + 600)
    before_hold = person_event(store, root, "shop", hold_start - 7200, hold_start - 3600)
    still_open = person_event(store, root, "shop", START - 10 * DAY, None)
    into_retention = person_event(store, root, "shop", START - 8 * DAY, START - 6 * DAY)  # ends inside 7 days
    offline = store.record("camera_offline", "shop", hold_start - 7200)  # no end: ends when it happens
    store.mark_queued(offline)

    retention = Retention(root, index, {"shop": 7}, min_free_gb=0, min_free_percent=0, events=store)
    report = retention.enforce(now=START)

    assert {e.id for e in store.list()} == {into_hold.id, still_open.id, into_retention.id}
    assert report.events_pruned == 2  # before_hold and the offline event
    assert before_hold.id not in {e.id for e in store.list()}
    # The event kept by the hold keeps its snapshot too: the hold overlaps its day.
    assert any((root / "snapshots" / "shop").rglob(f"{into_hold.id}*.jpg"))
    # Once the open event has ended (long ago), it goes at the next pass; the held one stays.
    still_open.end = START - 10 * DAY + 60
    ended = EventChange("end", still_open, seq=1).local_event(None, pre_roll=0, post_roll=0)
    store.save(ended)
    store.mark_queued(ended)
    assert retention.enforce(now=START).events_pruned == 1
    assert {e.id for e in store.list()} == {into_hold.id, into_retention.id}


def test_thousands_of_holds_prune_in_one_statement(tmp_path: Path) -> None:
    """2,000 holds, one every 100 s: events inside one stay, events between two go, in one DELETE."""
    store = EventStore(tmp_path)
    holds = [(START + 100 * i, START + 100 * i + 10) for i in range(2000)]
    inside, between = [], []
    for i in range(0, 2000, 50):
        inside.append(store.record("camera_offline", "shop", START + 100 * i + 5))
        between.append(store.record("camera_offline", "shop", START + 100 * i + 50))
    for event in inside + between:
        store.mark_queued(event)
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        pruned = store.prune("shop", START + 300_000, holds)
    finally:
        store.db.conn.set_trace_callback(None)
    assert pruned == len(between) == 40
    assert {e.id for e in store.list()} == {e.id for e in inside}
    work = [s for s in statements if s.split()[0].upper() not in ("BEGIN", "COMMIT")]
    assert len(work) == 1 and work[0].split()[0].lower() == "delete", statements
