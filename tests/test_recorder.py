"""Recorder: stream copy into keyframe-cut fMP4 segments that play, with exact timing."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import av
import pytest

from edge_agent.config.schema import RecordConfig
from edge_agent.record.index import SegmentIndex
from edge_agent.record.paths import parse_relpath, segment_relpath
from edge_agent.record.recorder import SegmentRecorder, UnsupportedCodec
from edge_agent.record.segment import SegmentWriter
from tests.conftest import SHARED_VIDEO, ffmpeg_decodes, ffprobe_packets
from tests.support.recording import record_file

START = 1_790_000_000.0  # 2026-09-21T14:13:20Z


def test_segments_are_keyframe_cut_stream_copies_that_play(tmp_path: Path, h264_file: Path) -> None:
    index = SegmentIndex(tmp_path)
    segments = record_file(tmp_path, index, h264_file, start=START, segment_seconds=4)
    # 40 s at one keyframe per second, cut after >= 4 s: ten 4-second segments.
    assert [round(s.duration, 3) for s in segments] == [4.0] * 10
    # Chained: each starts where the previous ended, no false gaps.
    for a, b in itertools.pairwise(segments):
        assert b.start == pytest.approx(a.end)
    total = 0
    for seg in segments:
        path = tmp_path / seg.path
        assert path.suffix == ".mp4" and not Path(str(path) + ".part").exists()
        ok, errors = ffmpeg_decodes(path)
        assert ok, errors
        total += ffprobe_packets(path)
        assert seg.keyframes == 4 and seg.codec == "h264" and (seg.width, seg.height) == (640, 360)
        assert parse_relpath(seg.path) == ("cam", int(seg.start))
    assert total == ffprobe_packets(h264_file)  # nothing dropped, nothing duplicated
    # The packets are the camera's bytes: stream copy, not a re-encode.
    with av.open(str(h264_file)) as a, av.open(str(tmp_path / segments[0].path)) as b:
        src = [bytes(p) for p in a.demux(a.streams.video[0]) if p.size][:60]
        dst = [bytes(p) for p in b.demux(b.streams.video[0]) if p.size][:60]
    assert src == dst


def test_layout_is_utc_camera_date_hour_minute_second(tmp_path: Path) -> None:
    assert segment_relpath("shop", START) == "shop/2026-09-21/14/13.20.mp4"
    (tmp_path / "shop/2026-09-21/14").mkdir(parents=True)
    (tmp_path / "shop/2026-09-21/14/13.20.mp4").write_bytes(b"x")
    assert segment_relpath("shop", START + 0.5, tmp_path) == "shop/2026-09-21/14/13.20-1.mp4"
    assert parse_relpath("shop/2026-09-21/14/13.20-1.mp4") == ("shop", START)
    assert parse_relpath("../etc/passwd") is None


def test_index_rows_match_segments_and_are_batched(tmp_path: Path, h264_file: Path) -> None:
    index = SegmentIndex(tmp_path)
    recorder_segments = record_file(tmp_path, index, h264_file, start=START, segment_seconds=10, stop_after=25)
    rows = index.segments("cam", START - 1, START + 100)
    assert [r.path for r in rows] == [s.path for s in recorder_segments]
    assert index.pending == 0
    # Segments added but not yet flushed are still visible to queries in this process.
    index.add(rows[0].__class__(**{**rows[0].__dict__, "path": "cam/x.mp4", "start": START + 500, "end": START + 510}))
    assert index.pending == 1
    assert [s.path for s in index.segments("cam", START + 499, START + 520)] == ["cam/x.mp4"]


def test_unsupported_codec_is_a_clear_error(tmp_path: Path) -> None:
    # vtest.avi is MPEG-4 Part 2 (msmpeg4): storing it would need a re-encode, which the recorder never does.
    recorder = SegmentRecorder(tmp_path, "hall", RecordConfig(), SegmentIndex(tmp_path))
    with (
        av.open(str(SHARED_VIDEO / "vtest.avi")) as container,
        pytest.raises(UnsupportedCodec, match="'msmpeg4' cannot be recorded without re-encoding"),
    ):
        recorder.set_stream(container.streams.video[0])


def test_real_footage_records_losslessly(tmp_path: Path, footage: Path) -> None:
    index = SegmentIndex(tmp_path)
    segments = record_file(tmp_path, index, footage, start=START, segment_seconds=10)
    assert sum(ffprobe_packets(tmp_path / s.path) for s in segments) == ffprobe_packets(footage)
    assert sum(s.duration for s in segments) == pytest.approx(139.4, abs=0.2)


def test_each_finished_fragment_is_on_disk_before_the_segment_closes(tmp_path: Path, h264_file: Path) -> None:
    # What a kill -9 or a power cut mid-segment leaves: every fragment completed so far, not
    # whatever happened to fill a write buffer. h264_file has a keyframe every second (15 frames).
    with av.open(str(h264_file)) as container:
        stream = container.streams.video[0]
        writer = SegmentWriter(tmp_path, "cam/part.mp4", "cam", stream, START)
        packets = [p for p in container.demux(stream) if p.size][:52]  # 3.5 s: keyframes at 0, 1, 2, 3 s
        for packet in packets:
            assert packet.dts is not None and packet.pts is not None
            writer.write(packet, packet.pts, packet.dts, packet.duration or 1, packet.is_keyframe)
        with av.open(str(writer.part_path)) as on_disk:
            readable = [p for p in on_disk.demux(on_disk.streams.video[0]) if p.size]
        # The fragments of seconds 0-3 were complete when the keyframe at 3 s arrived.
        assert len(readable) == 45
        assert [bytes(p) for p in readable] == [bytes(p) for p in packets[:45]]
        writer.abandon()


def test_a_record_only_agent_never_loads_opencv(tmp_path: Path, h264_file: Path) -> None:
    """A village box has 1 GB of RAM: recording, retention and the MQTT link run without OpenCV
    or a detector (16 MiB and more of resident memory); they load only when a camera analyses."""
    script = f"""
import sys, time
from edge_agent.agent import Agent
from edge_agent.config import parse_config
agent = Agent(parse_config('''
storage: {{root: {tmp_path / "rec"}, index_flush_seconds: 1, retention_interval_seconds: 1}}
mqtt: {{enabled: false}}
cameras:
  hall: {{source: {h264_file}, detect: {{enabled: false}}}}
'''))
agent.start()
deadline = time.monotonic() + 60
while agent.workers[0].status.segments < 1 and time.monotonic() < deadline:
    time.sleep(0.2)
time.sleep(1.5)  # at least one retention pass
agent.shutdown()
print(agent.workers[0].status.segments, sorted(m for m in ("cv2", "onnxruntime") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    segments, loaded = out.stdout.split(maxsplit=1)
    assert int(segments) >= 1
    assert loaded.strip() == "[]"
