"""The agent process end to end: SIGTERM closes segments cleanly, status, holds, analysis frames."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
from pathlib import Path

import pytest

from edge_agent.capture.frames import iter_frames
from edge_agent.capture.sources import StreamSpec
from edge_agent.record.index import SegmentIndex
from edge_agent.record.segment import iso
from tests.conftest import agent_cmd, ffmpeg_decodes, wait_for


def test_sigterm_closes_the_open_segment_and_status_reports(tmp_path: Path, footage: Path) -> None:
    root = tmp_path / "rec"
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"storage: {{root: {root}, index_flush_seconds: 600}}\ncameras:\n  shop: {{source: {footage}}}\n")
    proc = subprocess.Popen(agent_cmd("run", "--config", str(cfg)), stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: any(root.rglob("*.mp4")), timeout=40)  # first 10 s segment done
        assert wait_for(lambda: any(root.rglob("*.part")), timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "signal SIGTERM: stopping" in stderr and "agent stopped" in stderr
    assert not list(root.rglob("*.part"))
    # The index was flushed at shutdown even though the flush interval never came round.
    index = SegmentIndex(root)
    segments = index.segments("shop", 0, 4e9)
    assert {s.path for s in segments} == {p.relative_to(root).as_posix() for p in root.rglob("*.mp4")}
    assert len(segments) >= 2
    for seg in segments:
        ok, errors = ffmpeg_decodes(root / seg.path)
        assert ok, errors
    status = subprocess.run(agent_cmd("status", "--config", str(cfg)), capture_output=True, text=True, check=True)
    data = json.loads(status.stdout)
    assert data["recorded"]["shop"]["segments"] == len(segments)
    assert data["recorded"]["shop"]["first"] == iso(segments[0].start)
    assert data["agent"]["cameras"][0]["state"] == "stopped"
    assert data["agent"]["cameras"][0]["segments"] == len(segments)


def test_hold_commands_and_read_only_commands_never_create_storage(tmp_path: Path, h264_file: Path) -> None:
    from tests.support.recording import record_file

    root = tmp_path / "rec"
    index = SegmentIndex(root)
    segs = record_file(root, index, h264_file, camera="shop", segment_seconds=4, stop_after=8)
    index.close()
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"storage: {{root: {root}}}\ncameras:\n  shop: {{source: rtsp://h/s}}\n")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(agent_cmd(*args, "--config", str(cfg)), capture_output=True, text=True)

    added = run(
        "hold",
        "add",
        "--camera",
        "shop",
        "--start",
        iso(segs[0].start),
        "--end",
        iso(segs[0].end),
        "--reason",
        "case 2026-117",
    )
    assert added.returncode == 0, added.stderr
    hold_id = json.loads(added.stdout)["hold"]
    listed = [json.loads(line) for line in run("hold", "list").stdout.splitlines()]
    assert listed == [
        {
            "hold": hold_id,
            "camera": "shop",
            "start": iso(segs[0].start),
            "end": iso(segs[0].end),
            "reason": "case 2026-117",
        }
    ]
    backwards = run(
        "hold", "add", "--camera", "shop", "--start", iso(segs[0].end), "--end", iso(segs[0].start), "--reason", "x"
    )
    assert backwards.returncode == 1 and "end must be after its start" in backwards.stderr
    assert run("hold", "release", str(hold_id)).returncode == 0
    again = run("hold", "release", str(hold_id))
    assert again.returncode == 1 and f"no hold with id {hold_id}" in again.stderr

    empty = tmp_path / "empty.yaml"
    empty.write_text(f"storage: {{root: {tmp_path / 'nothing-here'}}}\ncameras:\n  shop: {{source: rtsp://h/s}}\n")
    proc = subprocess.run(agent_cmd("status", "--config", str(empty)), capture_output=True, text=True)
    assert proc.returncode == 1 and "no ring buffer at" in proc.stderr
    assert not (tmp_path / "nothing-here").exists()


def test_analysis_frames_are_sampled_and_downscaled(footage: Path) -> None:
    spec = StreamSpec("file", str(footage), str(footage))
    frames = list(iter_frames(spec, fps=2, width=320))
    # 139.4 s of 10 fps video sampled at 2 fps.
    assert len(frames) == pytest.approx(279, abs=2)
    assert all(f.image.shape == (180, 320, 3) for f in frames)
    steps = [b.t - a.t for a, b in itertools.pairwise(frames)]
    assert min(steps) == pytest.approx(0.5, abs=0.01) and max(steps) == pytest.approx(0.5, abs=0.01)
    assert frames[1].index == 5  # every fifth decoded frame
    # Not a still picture: consecutive samples differ (people walk through).
    assert any(abs(a.image.astype(int) - b.image.astype(int)).mean() > 1 for a, b in itertools.pairwise(frames))
