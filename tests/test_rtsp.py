"""Real RTSP over real sockets (GStreamer's RTSP server): TCP and UDP, drops and reconnects,
and one bad camera never stopping the others."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.capture.stream import open_stream
from edge_agent.config import parse_config
from edge_agent.record.index import SegmentIndex
from tests.conftest import RtspServer, ffmpeg_decodes, free_port, wait_for
from tests.support.rtsp_cutter import CutMode, RtspCutter

FAST_RECONNECT = "reconnect: {initial_seconds: 0.5, max_seconds: 2, open_timeout_seconds: 3, read_timeout_seconds: 3}"


def make_agent(root: Path, cameras: dict[str, str], transport: str = "tcp", analyse: bool = True) -> Agent:
    detect = "" if analyse else ", detect: {enabled: false}"
    lines = [
        f"storage: {{root: {root}, index_flush_seconds: 1}}",
        f"defaults: {{transport: {transport}, record: {{segment_seconds: 2}}, {FAST_RECONNECT}{detect}}}",
        "cameras:",
    ]
    lines += [f"  {name}: {{source: '{url}'}}" for name, url in cameras.items()]
    return Agent(parse_config("\n".join(lines) + "\n"))


def status(agent: Agent, camera: str) -> str:
    return next(s.state for s in agent.statuses() if s.camera == camera)


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_records_an_rtsp_camera(
    transport: str, tmp_path: Path, long_h264_file: Path, rtsp_server: Callable[..., RtspServer]
) -> None:
    server = rtsp_server({"/cam": long_h264_file})
    agent = make_agent(tmp_path, {"gate": server.url("/cam")}, transport)
    agent.start()
    try:
        assert wait_for(lambda: agent.workers[0].status.segments >= 3, timeout=60), agent.statuses()
        assert status(agent, "gate") == "online"
    finally:
        agent.shutdown()
    index = SegmentIndex(tmp_path)
    segments = index.segments("gate", 0, 4e9)
    assert len(segments) >= 3
    assert all(s.codec == "h264" and (s.width, s.height) == (320, 180) for s in segments)
    for seg in segments:
        ok, errors = ffmpeg_decodes(tmp_path / seg.path)
        assert ok, errors
    assert not list(tmp_path.rglob("*.part"))  # clean shutdown closed the open segment


def test_camera_drop_reconnect_and_events(
    tmp_path: Path, long_h264_file: Path, rtsp_server: Callable[..., RtspServer]
) -> None:
    server = rtsp_server({"/cam": long_h264_file})
    agent = make_agent(tmp_path, {"lane": server.url("/cam")})
    agent.start()
    try:
        assert wait_for(lambda: agent.workers[0].status.segments >= 1, timeout=60)
        server.stop()  # the camera loses power
        assert wait_for(lambda: status(agent, "lane") == "offline", timeout=30)
        worker = agent.workers[0]
        assert worker.status.last_error
        kinds = [e.kind for e in agent.events.list(camera="lane")]
        assert kinds == ["camera_offline"]
        # Several failed reconnects later, still one offline event for the one outage.
        assert wait_for(lambda: worker.status.reconnects >= 3, timeout=30)
        assert [e.kind for e in agent.events.list(camera="lane")] == ["camera_offline"]
        segments_before = worker.status.segments
        rtsp_server({"/cam": long_h264_file}, port=server.port)  # power back
        assert wait_for(lambda: status(agent, "lane") == "online", timeout=30)
        assert wait_for(lambda: worker.status.segments >= segments_before + 2, timeout=60)
        assert [e.kind for e in agent.events.list(camera="lane")] == ["camera_offline", "camera_back"]
    finally:
        agent.shutdown()
    offline = SegmentIndex(tmp_path).segments("lane", 0, 4e9)
    for seg in offline:
        ok, errors = ffmpeg_decodes(tmp_path / seg.path)
        assert ok, errors


def test_a_server_that_goes_silent_is_detected_by_the_read_timeout(
    tmp_path: Path, long_h264_file: Path, rtsp_server: Callable[..., RtspServer]
) -> None:
    """The camera hangs with its connection open (no RST, no EOF): only a read timeout can tell."""
    import os
    import signal

    server = rtsp_server({"/cam": long_h264_file})
    agent = make_agent(tmp_path, {"hang": server.url("/cam")})
    agent.start()
    try:
        assert wait_for(lambda: agent.workers[0].status.segments >= 1, timeout=60)
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            assert wait_for(lambda: status(agent, "hang") == "offline", timeout=30)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert wait_for(lambda: status(agent, "hang") == "online", timeout=30)
        assert [e.kind for e in agent.events.list(camera="hang")] == ["camera_offline", "camera_back"]
    finally:
        agent.shutdown()
    for seg in SegmentIndex(tmp_path).segments("hang", 0, 4e9):
        ok, errors = ffmpeg_decodes(tmp_path / seg.path)
        assert ok, errors


@pytest.mark.parametrize("mode", ["hang", "drop"])
def test_a_camera_cut_inside_a_keyframe_leaves_only_playable_segments(
    mode: CutMode, tmp_path: Path, long_h264_file: Path, rtsp_server: Callable[..., RtspServer]
) -> None:
    """Cut after the keyframe's SPS/PPS, before its picture: FFmpeg's parser flushes an access
    unit with no picture in it, which must not reach the recording."""
    server = rtsp_server({"/cam": long_h264_file})
    cutter = RtspCutter(server.port)
    # Record only: analysis would open a second session, and the cut must hit the recording one.
    agent = make_agent(tmp_path, {"cut": cutter.url("/cam")}, analyse=False)
    agent.start()
    try:
        worker = agent.workers[0]
        assert wait_for(lambda: worker.status.segments >= 1, timeout=60)
        cutter.arm(mode)
        assert cutter.cut.wait(timeout=30)
        assert wait_for(lambda: status(agent, "cut") == "offline", timeout=30)
        if mode == "hang":
            # Told by the gap before FFmpeg's flush, not by FFmpeg's second timeout.
            assert "no data for 3 s" in (worker.status.last_error or "")
        assert wait_for(lambda: status(agent, "cut") == "online", timeout=30)
        segments_back = worker.status.segments
        assert wait_for(lambda: worker.status.segments >= segments_back + 1, timeout=60)
    finally:
        agent.shutdown()
        cutter.close()
    segments = SegmentIndex(tmp_path).segments("cut", 0, 4e9)
    assert len(segments) >= 2
    for seg in segments:
        ok, errors = ffmpeg_decodes(tmp_path / seg.path)
        assert ok, f"{seg.path}: {errors}"


def test_bad_cameras_never_stop_the_good_one(
    tmp_path: Path, long_h264_file: Path, rtsp_server: Callable[..., RtspServer]
) -> None:
    server = rtsp_server({"/cam": long_h264_file})
    nobody = free_port()
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x01\xff" * 5000)
    agent = make_agent(
        tmp_path,
        {
            "good": server.url("/cam"),
            "unreachable": f"rtsp://127.0.0.1:{nobody}/stream1",
            "wrongpath": server.url("/nonesuch"),
            "corrupt": str(garbage),
            "missing": str(tmp_path / "no-such-file.mp4"),
        },
    )
    agent.start()
    try:
        assert wait_for(lambda: agent.workers[0].status.segments >= 3, timeout=60), agent.statuses()
        assert wait_for(
            lambda: all(
                status(agent, c) in ("offline", "error") for c in ("unreachable", "wrongpath", "corrupt", "missing")
            ),
            timeout=30,
        )
        errors = {s.camera: s.last_error or "" for s in agent.statuses()}
        assert status(agent, "good") == "online"
        assert f"127.0.0.1:{nobody}" in errors["unreachable"]
        assert "404" in errors["wrongpath"] or "Not Found" in errors["wrongpath"]
        assert "garbage.mp4" in errors["corrupt"]
        assert "no-such-file.mp4" in errors["missing"]
    finally:
        agent.shutdown()


def test_a_slow_consumer_is_not_mistaken_for_a_silent_camera(
    long_h264_file: Path, rtsp_server: Callable[..., RtspServer]
) -> None:
    """The stall check times the demuxer only: a recorder stuck on a slow SD card write for
    longer than the read timeout finds the camera's packets waiting in the socket."""
    import time

    from edge_agent.capture.sources import StreamSpec
    from edge_agent.capture.stream import open_stream, video_packets

    server = rtsp_server({"/cam": long_h264_file})
    spec = StreamSpec("rtsp", server.url("/cam"), server.url("/cam"), {"rtsp_transport": "tcp", "timeout": "5000000"})
    container = open_stream(spec, 5.0, 5.0)
    try:
        received = 0
        for _packet in video_packets(container, spec, False, stall_seconds=1.0):
            received += 1
            if received <= 3:
                time.sleep(1.5)  # the consumer, not the camera, is slow
            if received == 20:
                break
    finally:
        container.close()
    assert received == 20


@pytest.mark.exclusive  # frame arrival gaps are timed in real time
def test_a_caught_up_recorder_reads_the_camera_in_bursts_and_loses_nothing(
    long_h264_file: Path, rtsp_server: Callable[..., RtspServer]
) -> None:
    """With batch_seconds the reader sleeps once it is at the live edge, and the frames that
    gathered in the socket meanwhile come out back to back, every one of them, in order."""
    import time

    from edge_agent.capture.sources import StreamSpec
    from edge_agent.capture.stream import video_packets

    server = rtsp_server({"/cam": long_h264_file})
    spec = StreamSpec("rtsp", server.url("/cam"), server.url("/cam"), {"rtsp_transport": "tcp", "timeout": "5000000"})

    def arrivals(batch_seconds: float) -> tuple[list[float], list[int]]:
        container = open_stream(spec, 5.0, 5.0)
        times: list[float] = []
        pts: list[int] = []
        try:
            for packet in video_packets(container, spec, False, 5.0, True, batch_seconds):
                times.append(time.monotonic())
                pts.append(packet.pts)
                if len(times) == 60:  # 6 s at 10 fps
                    break
        finally:
            container.close()
        return times, pts

    def back_to_back(times: list[float]) -> float:
        # Past the server's start-up burst (it sends its first 2-3 s of video at once).
        gaps = [b - a for a, b in itertools.pairwise(times[30:])]
        return sum(g < 0.03 for g in gaps) / len(gaps)

    batched, batched_pts = arrivals(0.5)
    steady, _ = arrivals(0.0)
    assert back_to_back(batched) >= 0.5  # about 4 of every 6 frames wait in the socket
    assert back_to_back(steady) < 0.5  # one wake-up per frame, 0.1 s apart
    # Every frame, in order (the first has no timestamp yet: the recorder's sanitizer fills it).
    steps = {b - a for a, b in itertools.pairwise(batched_pts[1:])}
    assert len(steps) == 1 and steps.pop() > 0
