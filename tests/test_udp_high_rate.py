"""A 4K camera at 8 Mbit/s over RTSP/UDP: every frame the server sends is recorded, byte for byte.

Over UDP a full socket buffer drops datagrams silently, and the recorder reads in 0.2 s batches
(capture.udp). GStreamer's RTSP server streams a file; the recording must hold the file's
frames, none missing, none short of a datagram, in order. Only the frames of the measured
window are compared, so how a session ends (docs/recording.md) does not enter into it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from edge_agent.agent import Agent
from edge_agent.capture import udp
from edge_agent.capture.sources import resolve_sources
from edge_agent.config import parse_config
from edge_agent.record.index import SegmentIndex
from tests.conftest import RtspServer, wait_for

# An 8 Mbit/s camera over UDP must lose no frame: the reader needs a core, not a share of one.
pytestmark = pytest.mark.exclusive

WIDTH, HEIGHT, FPS = 3840, 2160, 25
BIT_RATE = 8_000_000
STOCK_RMEM_MAX = 212992  # net.core.rmem_max of a stock Linux kernel


def encode_4k(path: Path, seconds: int) -> Path:
    """`seconds` of 4K H.264 at 8 Mbit/s, a keyframe every second, like a 4K camera's main stream.

    A fixed detailed background with a band of new detail every frame keeps libx264 (ultrafast)
    at its rate cap, with keyframes several times the size of the other frames, as a camera sends."""
    rng = np.random.default_rng(4)
    tiles = rng.integers(0, 256, (FPS, HEIGHT // 16 + 1, WIDTH // 16), dtype=np.uint8)
    background = np.repeat(np.repeat(tiles[0], 16, 0), 16, 1)[:HEIGHT]
    band = HEIGHT // 4
    kbit = BIT_RATE // 1000
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.time_base = Fraction(1, FPS)
        stream.bit_rate = BIT_RATE
        stream.codec_context.options = {
            "preset": "ultrafast",
            "g": str(FPS),
            "keyint_min": str(FPS),
            "sc_threshold": "0",
            "bf": "0",
            "x264-params": f"vbv-maxrate={kbit}:vbv-bufsize={kbit}:nal-hrd=none",
        }
        picture = np.full((HEIGHT * 3 // 2, WIDTH), 128, np.uint8)  # yuv420p: luma, then grey chroma
        for i in range(seconds * FPS):
            top = (i * 97) % (HEIGHT - band)
            picture[:HEIGHT] = background
            picture[top : top + band] = np.repeat(np.repeat(tiles[i % FPS], 16, 0), 16, 1)[:band]
            frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def repeat(source: Path, path: Path, times: int) -> Path:
    """The source's packets `times` over, timestamps running on: a long stream without encoding it."""
    with av.open(str(source)) as inp:
        packets = [p for p in inp.demux(inp.streams.video[0]) if p.size]
        step = packets[1].pts - packets[0].pts
        span = packets[-1].pts - packets[0].pts + step
        with av.open(str(path), "w") as out:
            stream = out.add_stream_from_template(inp.streams.video[0])
            for k in range(times):
                for p in packets:
                    copy = av.Packet(bytes(p))
                    copy.pts, copy.dts, copy.time_base = p.pts + k * span, p.dts + k * span, p.time_base
                    copy.is_keyframe = p.is_keyframe
                    copy.stream = stream
                    out.mux(copy)
    return path


@pytest.fixture(scope="module")
def uhd_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of 4K at 8 Mbit/s (encoding 4K takes about as long as playing it on two cores)."""
    return encode_4k(tmp_path_factory.mktemp("uhd") / "uhd-4s.mp4", seconds=4)


def frames(path: Path) -> list[list[bytes]]:
    """Each video packet's NAL units, without the parameter sets and delimiters that the RTP path
    adds in front of keyframes (GStreamer's config-interval), so a frame compares to its source."""
    out = []
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            data, units, i = bytes(packet), [], 0
            while i < len(data):  # MP4 (AVCC): each NAL unit after its 4-byte length
                n = int.from_bytes(data[i : i + 4], "big")
                if data[i + 4] & 0x1F not in (7, 8, 9):  # SPS, PPS, access unit delimiter
                    units.append(data[i + 4 : i + 4 + n])
                i += 4 + n
            if packet.size:
                out.append(units)
    return out


def record_over_udp(root: Path, video: Path, seconds: int, rtsp_server: Callable[..., RtspServer]) -> int:
    """Record the file over RTSP/UDP with the agent until `seconds` of it have passed; how many of
    the file's first `seconds` of frames the recording holds, from the first on, byte for byte."""
    server = rtsp_server({"/uhd": video})
    config = parse_config(
        f"storage: {{root: {root}, index_flush_seconds: 1}}\n"
        "mqtt: {enabled: false}\n"
        "defaults: {transport: udp, detect: {enabled: false}}\n"
        f"cameras:\n  uhd: {{source: '{server.url('/uhd')}'}}\n"
    )
    window = seconds * FPS
    agent = Agent(config)
    agent.start()
    try:
        worker = agent.workers[0]
        # Past the window by a second: every frame of it has reached the recorder or never will.
        # (The timeout bounds waiting for a stuck server; it is no limit on speed.)
        assert wait_for(lambda: worker.status.packets >= window + FPS, timeout=seconds + 240), worker.status
        assert worker.status.reconnects == 0, worker.status
    finally:
        agent.shutdown()
    segments = SegmentIndex(root).segments("uhd", 0, 4e9)
    assert all((s.codec, s.width, s.height) == ("h264", WIDTH, HEIGHT) for s in segments)
    recorded = [f for s in segments for f in frames(root / s.path)][:window]
    sent = frames(video)[:window]
    same = 0
    while same < len(recorded) and recorded[same] == sent[same]:
        same += 1
    return same


def test_a_4k_8_mbit_camera_over_udp_loses_no_frame(
    tmp_path: Path, uhd_clip: Path, rtsp_server: Callable[..., RtspServer]
) -> None:
    """60 s of it, with the receive buffer this host grants (in batches where it grants the full ask)."""
    video = repeat(uhd_clip, tmp_path / "uhd-64s.mp4", 16)
    assert record_over_udp(tmp_path / "rec", video, 60, rtsp_server) == 60 * FPS


def test_a_kernel_capped_buffer_is_reported_and_read_frame_by_frame_without_loss(
    tmp_path: Path,
    uhd_clip: Path,
    rtsp_server: Callable[..., RtspServer],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stock kernel (net.core.rmem_max 212992): batches of 0.2 s overflow what it grants."""
    rmem_max = tmp_path / "rmem_max"
    rmem_max.write_text(f"{STOCK_RMEM_MAX}\n")
    monkeypatch.setattr(udp, "RMEM_MAX", rmem_max)
    caplog.set_level(logging.WARNING, logger="edge_agent.capture.camera")
    video = repeat(uhd_clip, tmp_path / "uhd-24s.mp4", 6)
    assert record_over_udp(tmp_path / "rec", video, 20, rtsp_server) == 20 * FPS
    warnings = [r.getMessage() for r in caplog.records if "net.core.rmem_max" in r.getMessage()]
    assert warnings == [
        f"camera uhd: RTSP over UDP: the kernel grants a receive buffer of {STOCK_RMEM_MAX} bytes, "
        f"{udp.RECEIVE_BUFFER_BYTES} asked (net.core.rmem_max); reading frame by frame, and a high bit rate "
        f"may still lose packets: sysctl net.core.rmem_max={udp.RECEIVE_BUFFER_BYTES}, or transport: tcp "
        "(docs/recording.md)"
    ]


def test_udp_cameras_ask_for_a_receive_buffer_within_the_kernel_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = parse_config(
        "cameras:\n  u: {source: 'rtsp://h/s', transport: udp}\n  t: {source: 'rtsp://h/s', transport: tcp}\n"
    )
    rmem_max = tmp_path / "rmem_max"
    monkeypatch.setattr(udp, "RMEM_MAX", rmem_max)
    rmem_max.write_text("8388608\n")  # a tuned box: the full ask
    main = resolve_sources(config.cameras["u"]).main
    assert main.options["buffer_size"] == str(udp.RECEIVE_BUFFER_BYTES)
    assert main.udp_buffer is not None and not main.udp_buffer.capped
    rmem_max.write_text(f"{STOCK_RMEM_MAX}\n")
    main = resolve_sources(config.cameras["u"]).main
    assert main.options["buffer_size"] == str(STOCK_RMEM_MAX)
    assert main.udp_buffer is not None and main.udp_buffer.capped
    rmem_max.unlink()  # no such file (not Linux): ask, and let the system decide
    assert resolve_sources(config.cameras["u"]).main.options["buffer_size"] == str(udp.RECEIVE_BUFFER_BYTES)
    tcp = resolve_sources(config.cameras["t"]).main  # TCP slows the camera down instead of dropping
    assert "buffer_size" not in tcp.options and tcp.udp_buffer is None
