"""Clips: frame-accurate coverage from the keyframe at or before the start, SHA-256 manifest."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import av
import pytest

from edge_agent.record.clip import ClipError, export_clip
from edge_agent.record.index import SegmentIndex
from edge_agent.record.segment import iso
from edge_agent.record.timeline import build_timeline
from tests.conftest import agent_cmd, ffmpeg_decodes, ffprobe_packets
from tests.support.recording import record_file

START = 1_790_000_000.0
FPS = 15  # h264_file: 15 fps, keyframe every 15 frames, frame i at i/15 s


def packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def recorded(tmp_path: Path, h264_file: Path) -> tuple[Path, SegmentIndex]:
    root = tmp_path / "rec"
    index = SegmentIndex(root)
    record_file(root, index, h264_file, start=START, segment_seconds=4)
    return root, index


def test_clip_starts_at_keyframe_before_start_and_covers_end(
    recorded: tuple[Path, SegmentIndex], h264_file: Path, tmp_path: Path
) -> None:
    root, index = recorded
    out = tmp_path / "clips" / "evidence.mp4"
    manifest = export_clip(root, index, "cam", START + 10.5, START + 17.2, out, site="v1", device="box")
    source = packets(h264_file)
    # Frame 157 is at 10.47 s; the keyframe at or before is frame 150 (10.0 s); frame 258 is at 17.2 s.
    assert packets(out) == source[150:259]
    assert manifest.packets == 109 == ffprobe_packets(out)
    assert manifest.actual_start == iso(START + 10.0)
    assert manifest.requested_start == iso(START + 10.5)
    assert manifest.actual_end >= iso(START + 17.2)
    ok, errors = ffmpeg_decodes(out)
    assert ok, errors
    # The clip's own timestamps start at zero and run at the camera's rate.
    with av.open(str(out)) as c:
        assert float(c.duration or 0) / 1e6 == pytest.approx(109 / FPS, abs=0.1)
    # Manifest: hashes of the clip and of every source segment, written beside the clip.
    on_disk = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert on_disk["sha256"] == sha256(out) == manifest.sha256
    assert [s["path"] for s in on_disk["sources"]] == [f"cam/2026-09-21/14/13.{sec:02d}.mp4" for sec in (28, 32, 36)]
    for src in on_disk["sources"]:
        assert src["sha256"] == sha256(root / src["path"])
    assert on_disk["site"] == "v1" and on_disk["camera"] == "cam" and on_disk["gaps"] == []


def test_window_with_no_recording_is_an_error_not_an_empty_file(
    recorded: tuple[Path, SegmentIndex], tmp_path: Path
) -> None:
    root, index = recorded
    out = tmp_path / "none.mp4"
    with pytest.raises(ClipError, match="no recording for camera 'cam' between"):
        export_clip(root, index, "cam", START + 1000, START + 1010, out)
    assert not out.exists()
    with pytest.raises(ClipError, match="must be after its start"):
        export_clip(root, index, "cam", START + 10, START + 5, out)
    with pytest.raises(ClipError, match="no recording for camera 'other'"):
        export_clip(root, index, "other", START, START + 10, out)


def test_clip_across_a_gap_lists_the_gap(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    index = SegmentIndex(root)
    record_file(root, index, h264_file, start=START, segment_seconds=4, stop_after=8)
    record_file(root, index, h264_file, start=START + 60, segment_seconds=4, stop_after=8)
    manifest = export_clip(root, index, "cam", START + 2, START + 65, tmp_path / "gap.mp4")
    assert len(manifest.gaps) == 1
    assert manifest.gaps[0]["start"] == iso(START + 8.0)
    assert manifest.gaps[0]["end"] == iso(START + 60)
    ok, errors = ffmpeg_decodes(tmp_path / "gap.mp4")
    assert ok, errors


def test_timeline_spans_and_gaps(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    index = SegmentIndex(root)
    record_file(root, index, h264_file, start=START, segment_seconds=4, stop_after=8)
    record_file(root, index, h264_file, start=START + 60, segment_seconds=4, stop_after=8)
    timeline = build_timeline("cam", index.segments("cam", START - 30, START + 100), START - 30, START + 100)
    assert [(s.start - START, s.end - START, s.segments) for s in timeline.spans] == [(0, 8, 2), (60, 68, 2)]
    assert [(g.start - START, g.end - START) for g in timeline.gaps] == [(-30, 0), (8, 60), (68, 100)]
    assert timeline.recorded_seconds == pytest.approx(16)


def test_cli_clip_timeline_and_unknown_camera(tmp_path: Path, h264_file: Path) -> None:
    root = tmp_path / "rec"
    index = SegmentIndex(root)
    record_file(root, index, h264_file, camera="shop", start=START, segment_seconds=4, stop_after=12)
    index.close()
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"storage: {{root: {root}}}\ncameras:\n  shop: {{source: rtsp://h/s}}\n")
    out = tmp_path / "c.mp4"
    run = subprocess.run(
        agent_cmd(
            "clip",
            "--config",
            str(cfg),
            "--camera",
            "shop",
            "--start",
            iso(START + 2),
            "--end",
            "2026-09-21T14:13:29+00:00",
            "--out",
            str(out),
        ),
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["sha256"] == sha256(out)
    assert out.with_name("c.mp4.manifest.json").exists()
    tl = subprocess.run(
        agent_cmd(
            "timeline",
            "--config",
            str(cfg),
            "--camera",
            "shop",
            "--start",
            iso(START - 10),
            "--end",
            iso(START + 30),
            "--json",
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(tl.stdout)["recorded_seconds"] == pytest.approx(12)
    bad = subprocess.run(
        agent_cmd(
            "clip",
            "--config",
            str(cfg),
            "--camera",
            "../../etc",
            "--start",
            iso(START),
            "--end",
            iso(START + 5),
            "--out",
            str(out),
        ),
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "unknown camera '../../etc'" in bad.stderr
    empty = subprocess.run(
        agent_cmd(
            "clip",
            "--config",
            str(cfg),
            "--camera",
            "shop",
            "--start",
            iso(START + 900),
            "--end",
            iso(START + 905),
            "--out",
            str(tmp_path / "e.mp4"),
        ),
        capture_output=True,
        text=True,
    )
    assert empty.returncode == 1 and "no recording for camera 'shop'" in empty.stderr
    assert not (tmp_path / "e.mp4").exists()
    badtime = subprocess.run(
        agent_cmd(
            "clip",
            "--config",
            str(cfg),
            "--camera",
            "shop",
            "--start",
            "yesterday",
            "--end",
            iso(START),
            "--out",
            str(out),
        ),
        capture_output=True,
        text=True,
    )
    assert badtime.returncode == 2 and "not an ISO-8601 time" in badtime.stderr
