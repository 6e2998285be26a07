"""Evidence survives damaged segments: a garbled or truncated segment is found, named in a WARNING,
shown as a gap, and left out of clips, which are made from the intact rest with an honest manifest."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import av
import pytest

from edge_agent.record.clip import ClipError, export_clip, find_segments
from edge_agent.record.index import SegmentIndex
from edge_agent.record.repair import repair
from edge_agent.record.segment import Segment, iso
from edge_agent.record.timeline import DAMAGED, NO_RECORDING, build_timeline
from tests.conftest import agent_cmd, ffmpeg_decodes, ffprobe_packets
from tests.support.recording import record_file

START = 1_790_000_000.0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(agent_cmd(*args), capture_output=True, text=True)


def packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def garble_head(path: Path) -> None:
    """Overwrite the first 4 KB (ftyp, moov): same size, unreadable."""
    with open(path, "r+b") as fh:
        fh.write(bytes(range(256)) * 16)


def record(root: Path, h264_file: Path, start: float = START, camera: str = "cam") -> list[Segment]:
    index = SegmentIndex(root)
    segments = record_file(root, index, h264_file, camera=camera, start=start, segment_seconds=4, stop_after=20)
    index.close()
    assert len(segments) == 5
    return segments


def assert_sources_are_the_files(root: Path, manifest: dict[str, object]) -> None:
    sources = manifest["sources"]
    assert isinstance(sources, list)
    for src in sources:
        path = root / src["path"]
        assert src["bytes"] == path.stat().st_size
        assert src["sha256"] == sha256(path)


def test_segments_carry_the_hash_of_their_file(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    made = record(root, h264_file)
    for seg in SegmentIndex(root).segments("cam", 0, 4e9):
        assert seg.sha256 == sha256(root / seg.path) and seg.bytes == (root / seg.path).stat().st_size
        assert seg.damage is None
    assert {s.path for s in made} == {s.path for s in SegmentIndex(root).segments("cam", 0, 4e9)}


def test_cli_clip_over_a_garbled_segment_is_made_from_the_intact_ones(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    segments = record(root, h264_file)
    garble_head(root / segments[2].path)  # 8..12 s
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"storage: {{root: {root}}}\ncameras:\n  cam: {{source: rtsp://h/s}}\n")
    out = tmp_path / "clip.mp4"
    run = agent(
        "clip",
        "--config",
        str(cfg),
        "--camera",
        "cam",
        "--start",
        iso(START + 5),
        "--end",
        iso(START + 15),
        "--out",
        str(out),
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert f"WARNING edge_agent.record.integrity: damaged segment {segments[2].path}: content changed" in run.stderr
    manifest = json.loads(run.stdout)
    assert [s["path"] for s in manifest["sources"]] == [segments[i].path for i in (1, 3)]
    assert_sources_are_the_files(root, manifest)
    assert manifest["sha256"] == sha256(out)
    [gap] = manifest["gaps"]
    assert gap["reason"] == DAMAGED and gap["path"] == segments[2].path
    assert gap["start"] == iso(segments[2].start) and gap["end"] == iso(segments[2].end)
    assert "content changed" in gap["problem"]
    # The clip holds exactly the intact segments' packets from the keyframe at 5 s, and decodes cleanly.
    intact = packets(root / segments[1].path)[15:] + packets(root / segments[3].path)[:46]
    assert packets(out) == intact
    assert ffprobe_packets(out) == manifest["packets"] == len(intact)
    ok, errors = ffmpeg_decodes(out)
    assert ok, errors
    # The index remembers: the timeline shows the damaged segment as a gap.
    timeline = agent(
        "timeline", "--config", str(cfg), "--camera", "cam", "--start", iso(START), "--end", iso(START + 20), "--json"
    )
    assert timeline.returncode == 0, timeline.stderr
    tl = json.loads(timeline.stdout)
    assert tl["recorded_seconds"] == pytest.approx(16)
    assert [(g["reason"], g.get("path")) for g in tl["gaps"]] == [(DAMAGED, segments[2].path)]


def test_clip_over_a_truncated_segment_skips_it_and_states_only_true_sizes(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    segments = record(root, h264_file)
    truncated = root / segments[1].path
    recorded_size = truncated.stat().st_size
    os.truncate(truncated, 20000)
    out = tmp_path / "clip.mp4"
    manifest = export_clip(root, SegmentIndex(root), "cam", START + 2, START + 14, out).as_dict()
    assert [s["path"] for s in manifest["sources"]] == [segments[i].path for i in (0, 2, 3)]
    assert_sources_are_the_files(root, manifest)
    assert all(s["bytes"] != 20000 for s in manifest["sources"])
    [gap] = manifest["gaps"]
    assert (gap["reason"], gap["path"]) == (DAMAGED, segments[1].path)
    assert gap["problem"] == f"size is 20000 bytes, {recorded_size} when recorded"
    assert gap["seconds"] == pytest.approx(4)
    ok, errors = ffmpeg_decodes(out)
    assert ok, errors
    assert "Invalid NAL unit size" not in errors


def test_clip_skips_a_segment_that_does_not_demux_even_when_its_size_matches(tmp_path: Path, h264_file: Path) -> None:
    """A row without a hash (indexed by an older version) can only be checked by reading it."""
    root = tmp_path / "rec"
    segments = record(root, h264_file)
    with sqlite3.connect(root / "index.db") as db:
        db.execute("update segments set sha256 = null")
    garble_head(root / segments[0].path)
    out = tmp_path / "clip.mp4"
    manifest = export_clip(root, SegmentIndex(root), "cam", START + 1, START + 6, out)
    assert [s.path for s in manifest.sources] == [segments[1].path]
    assert manifest.gaps[0]["path"] == segments[0].path
    assert str(manifest.gaps[0]["problem"]).startswith("cannot be demuxed")
    # The clip starts at the first keyframe it can use.
    assert manifest.actual_start == iso(segments[1].start)
    # The intact segment got its hash on the way.
    [intact] = [s for s in SegmentIndex(root).segments("cam", 0, 4e9) if s.path == segments[1].path]
    assert intact.sha256 == sha256(root / intact.path) == manifest.sources[0].sha256


def test_every_source_damaged_is_a_clear_error(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    segments = record(root, h264_file)
    garble_head(root / segments[1].path)
    os.truncate(root / segments[2].path, 20000)
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"storage: {{root: {root}}}\ncameras:\n  cam: {{source: rtsp://h/s}}\n")
    out = tmp_path / "clip.mp4"
    run = agent(
        "clip",
        "--config",
        str(cfg),
        "--camera",
        "cam",
        "--start",
        iso(START + 5),
        "--end",
        iso(START + 11),
        "--out",
        str(out),
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    error = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, run.stderr
    assert "every segment in the window is damaged" in error[0]
    assert f"{segments[1].path}: content changed" in error[0]
    assert f"{segments[2].path}: size is 20000 bytes" in error[0]
    assert not out.exists() and not out.with_name("clip.mp4.tmp").exists()
    assert not out.with_name("clip.mp4.manifest.json").exists()


def test_start_up_repair_flags_damaged_recent_segments_once(
    tmp_path: Path, h264_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "rec"
    segments = record(root, h264_file)
    garble_head(root / segments[3].path)
    os.truncate(root / segments[1].path, 20000)
    index = SegmentIndex(root)
    with caplog.at_level(logging.WARNING):
        report = repair(root, index)
    assert report.damaged == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(segments[1].path in w and "size is 20000 bytes" in w for w in warnings), warnings
    assert any(segments[3].path in w and "content changed" in w for w in warnings), warnings
    # Nothing is deleted: the files are evidence of what happened.
    assert (root / segments[1].path).exists() and (root / segments[3].path).exists()
    timeline = build_timeline("cam", find_segments(root, index, "cam", START, START + 20), START, START + 20)
    assert [(g.reason, g.path) for g in timeline.gaps] == [(DAMAGED, segments[1].path), (DAMAGED, segments[3].path)]
    assert timeline.recorded_seconds == pytest.approx(12)
    assert index.totals()["cam"]["damaged"] == 2
    # The next start knows them already: no new count, no repeated warning.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = repair(root, SegmentIndex(root))
    assert again.damaged == 0
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_restarted_agent_logs_the_damage_and_status_and_timeline_show_it(tmp_path: Path, h264_file: Path) -> None:
    """What the tester did: damage a finished segment, restart the agent, look at timeline and status."""
    root = tmp_path / "rec"
    start = float(int(time.time()) - 600)  # recent: retention must not take it
    segments = record(root, h264_file, start=start)
    garble_head(root / segments[2].path)
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(
        f"storage: {{root: {root}}}\nmqtt: {{enabled: false}}\n"
        f"cameras:\n  cam: {{source: {h264_file}, record: {{segment_seconds: 4}}}}\n"
    )
    run = agent("run", "--config", str(cfg), "--seconds", "1")
    assert run.returncode == 0, run.stderr
    [warning] = [line for line in run.stderr.splitlines() if "WARNING" in line and "damaged segment" in line]
    assert segments[2].path in warning and "content changed" in warning
    assert "1 damaged segments found" in run.stderr
    status = agent("status", "--config", str(cfg))
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["recorded"]["cam"]["damaged"] == 1
    timeline = agent(
        "timeline", "--config", str(cfg), "--camera", "cam", "--start", iso(start), "--end", iso(start + 20), "--json"
    )
    assert timeline.returncode == 0, timeline.stderr
    gaps = json.loads(timeline.stdout)["gaps"]
    assert [(g["reason"], g.get("path"), g["start"]) for g in gaps] == [
        (DAMAGED, segments[2].path, iso(segments[2].start))
    ]
    # A clip after the restart: the damage is known, and the one who cuts the clip is told too.
    out = tmp_path / "after-restart.mp4"
    clip = agent(
        "clip",
        "--config",
        str(cfg),
        "--camera",
        "cam",
        "--start",
        iso(start),
        "--end",
        iso(start + 20),
        "--out",
        str(out),
    )
    assert clip.returncode == 0, clip.stderr
    assert (
        f"damaged segment {segments[2].path}: content changed" in clip.stderr and "left out of the clip" in clip.stderr
    )
    manifest = json.loads(clip.stdout)
    assert segments[2].path not in [s["path"] for s in manifest["sources"]]
    assert [g.get("path") for g in manifest["gaps"]] == [segments[2].path]
    ok, errors = ffmpeg_decodes(out)
    assert ok, errors


def test_old_index_is_upgraded_in_place_and_old_rows_get_hashes(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    segments = record(root, h264_file)
    with sqlite3.connect(root / "index.db") as db:  # the schema before hashes
        db.execute("alter table segments drop column sha256")
        db.execute("alter table segments drop column damage")
    garble_head(root / segments[4].path)
    index = SegmentIndex(root)
    with sqlite3.connect(root / "index.db") as db:
        columns = {row[1] for row in db.execute("pragma table_info(segments)")}
    assert {"sha256", "damage"} <= columns
    assert all(s.sha256 is None for s in index.segments("cam", 0, 4e9))
    report = repair(root, index)
    assert report.damaged == 1
    rows = {s.path: s for s in index.segments("cam", 0, 4e9)}
    for seg in segments[:4]:
        assert rows[seg.path].sha256 == sha256(root / seg.path) and rows[seg.path].damage is None
    assert rows[segments[4].path].sha256 is None
    assert str(rows[segments[4].path].damage).startswith("cannot be demuxed")


def test_a_restored_file_counts_again(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    segments = record(root, h264_file)
    path = root / segments[2].path
    original = path.read_bytes()
    path.write_bytes(original[:20000])
    index = SegmentIndex(root)
    assert repair(root, index).damaged == 1
    with pytest.raises(ClipError, match="every segment in the window is damaged"):
        export_clip(root, index, "cam", START + 8.5, START + 11, tmp_path / "c.mp4")
    path.write_bytes(original)
    manifest = export_clip(root, index, "cam", START + 8.5, START + 11, tmp_path / "c.mp4")
    assert [s.path for s in manifest.sources] == [segments[2].path] and manifest.gaps == []
    assert [s.damage for s in index.segments("cam", 0, 4e9)] == [None] * 5


def test_a_short_damaged_segment_still_breaks_the_span() -> None:
    def seg(start: float, end: float, damage: str | None = None) -> Segment:
        return Segment("cam", start, end, f"cam/{start}.mp4", 1, "h264", 640, 360, 1, damage=damage)

    timeline = build_timeline("cam", [seg(0, 4), seg(4, 4.5, "size is 1 bytes"), seg(4.5, 8)], 0, 10)
    assert [(s.start, s.end) for s in timeline.spans] == [(0, 4), (4.5, 8)]
    assert [(g.start, g.end, g.reason) for g in timeline.gaps] == [(4, 4.5, DAMAGED), (8, 10, NO_RECORDING)]
    assert timeline.recorded_seconds == pytest.approx(7.5)


def test_manifest_hashes_the_bytes_the_clip_was_cut_from(
    tmp_path: Path, h264_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that changes after the clip read it: the manifest states what went into the clip."""
    import edge_agent.record.clip as clip_module

    root = tmp_path / "rec"
    segments = record(root, h264_file)
    recorded = {s.path: (s.bytes, s.sha256) for s in SegmentIndex(root).segments("cam", 0, 4e9)}
    real = clip_module.read_checked

    def read_then_changed(root: Path, segment: Segment) -> object:
        checked = real(root, segment)
        with open(root / segment.path, "ab") as fh:
            fh.write(b"appended after the read")
        return checked

    monkeypatch.setattr(clip_module, "read_checked", read_then_changed)
    manifest = export_clip(root, SegmentIndex(root), "cam", START + 1, START + 6, tmp_path / "c.mp4")
    assert [s.path for s in manifest.sources] == [segments[0].path, segments[1].path]
    for src in manifest.sources:
        assert (src.bytes, src.sha256) == recorded[src.path]
        assert src.sha256 != sha256(root / src.path)
