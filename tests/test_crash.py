"""kill -9 at any moment: every finished segment plays, the index matches the disk after restart,
and at most the segment in progress is lost (salvaged up to its last complete fragment)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from edge_agent.record.index import SegmentIndex
from edge_agent.record.repair import repair
from edge_agent.record.segment import sha256_file
from edge_agent.record.timeline import build_timeline
from tests.conftest import agent_cmd, ffmpeg_decodes, wait_for

SEGMENT_SECONDS = 4.0


def test_kill_9_at_random_moments_loses_at_most_the_segment_in_progress(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    cfg = tmp_path / "agent.yaml"
    # A long index flush interval: the kill always finds rows not yet in the index.
    cfg.write_text(
        f"storage: {{root: {root}, index_flush_seconds: 600}}\n"
        f"cameras:\n  cam: {{source: {h264_file}, record: {{segment_seconds: {SEGMENT_SECONDS}}}}}\n"
    )
    kills: list[float] = []
    logs: list[str] = []
    # Moments inside a segment, near its start, near a cut: not multiples of the segment length.
    for delay in (5.3, 4.2, 6.7, 9.9):
        before = set(root.rglob("*.part"))  # the previous kill's leftover, salvaged by this start
        proc = subprocess.Popen(agent_cmd("run", "--config", str(cfg)), stderr=subprocess.PIPE, text=True)
        assert wait_for(lambda b=before: bool(set(root.rglob("*.part")) - b), timeout=30, interval=0.05), (  # type: ignore[misc]
            "agent never started a segment"
        )
        time.sleep(delay - 1)
        proc.send_signal(signal.SIGKILL)
        kills.append(time.time())
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        assert proc.stderr is not None
        logs.append(proc.stderr.read())
    assert list(root.rglob("*.part")), "a kill should leave an interrupted segment behind"

    # Every restart repaired what the previous kill left.
    for log in logs[1:]:
        assert "index repaired" in log and "interrupted segments salvaged" in log
        assert "0 damaged segments found" in log and "damaged segment " not in log
    # The last kill's leftovers: the start-up repair salvages and re-indexes.
    index = SegmentIndex(root)
    report = repair(root, index)
    assert report.salvaged + report.discarded == 1  # discarded: killed before its first fragment
    assert report.indexed >= 1  # finished segments that the killed agent never flushed to the index
    assert report.damaged == 0  # a kill never leaves a finished segment that differs from its row
    assert not list(root.rglob("*.part"))
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*.mp4")}
    assert index.known_paths() == on_disk
    for seg in index.segments("cam", 0, 4e9):  # salvaged and re-indexed ones carry their hash too
        assert seg.damage is None and seg.sha256 == sha256_file(root / seg.path)
    for rel in on_disk:
        ok, errors = ffmpeg_decodes(root / rel)
        assert ok, f"{rel}: {errors}"
    # Each run's recording reaches close to its kill: at most about one fragment (1 s) is lost,
    # never more than the segment in progress.
    segments = index.segments("cam", 0, 4e9)
    timeline = build_timeline("cam", segments, segments[0].start, segments[-1].end)
    assert timeline.spans
    for killed_at in kills:
        # No segment runs through a kill (timestamps are honest), and the recording before the
        # kill reaches to within one segment of it.
        assert not [s for s in segments if s.start < killed_at - 0.5 and s.end > killed_at + 0.5]
        last_before = max(s.end for s in segments if s.end <= killed_at + 0.5)
        assert killed_at - last_before < SEGMENT_SECONDS, (killed_at, last_before)
    # Repair is idempotent: a second start finds nothing to do.
    again = repair(root, index)
    assert (again.indexed, again.salvaged, again.discarded, again.missing_rows, again.damaged) == (0, 0, 0, 0, 0)


def test_repair_drops_rows_of_deleted_files_and_discards_garbage(tmp_path: Path, h264_file: Path) -> None:
    from tests.support.recording import record_file

    root = tmp_path / "rec"
    index = SegmentIndex(root)
    segments = record_file(root, index, h264_file, segment_seconds=4, stop_after=12)
    (root / segments[0].path).unlink()
    garbage = root / "cam/2026-09-21/14/59.59.mp4"
    garbage.write_bytes(b"\x00garbage" * 100)
    junk_part = root / "cam/2026-09-21/14/58.00.mp4.part"
    junk_part.write_bytes(b"not an mp4")
    report = repair(root, index)
    assert report.missing_rows == 1 and report.discarded == 2
    assert not garbage.exists() and not junk_part.exists()
    assert index.known_paths() == {s.path for s in segments[1:]}
