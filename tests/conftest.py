"""Shared fixtures: real H.264 test video, the real footage in ../shared, a real RTSP server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.testvideo import make_h264
from tests.support.brokers import Broker

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_VIDEO = SHARED / "data" / "video"
RTSP_SERVER = REPO / "tests" / "support" / "rtsp_server.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def h264_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 s of 640x360 15 fps H.264, a keyframe every second, frame number burnt in."""
    return make_h264(tmp_path_factory.mktemp("video") / "cam.mp4", seconds=40, fps=15, gop=15)


@pytest.fixture(scope="session")
def long_h264_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 s of small H.264 for RTSP sessions that must outlast a test."""
    return make_h264(tmp_path_factory.mktemp("video") / "long.mp4", seconds=120, fps=10, width=320, height=180, gop=10)


@pytest.fixture(scope="session")
def footage() -> Path:
    path = SHARED_VIDEO / "one-by-one-person-detection.mp4"
    assert path.exists(), f"real footage missing: {path} (the repo expects ../shared beside it)"
    return path


class RtspServer:
    def __init__(self, mounts: dict[str, Path], port: int | None = None) -> None:
        self.mounts = mounts
        self.port = port or free_port()
        self.proc: subprocess.Popen[str] | None = None

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}{mount}"

    def start(self) -> RtspServer:
        assert os.path.exists(SYSTEM_PYTHON), "system Python with python3-gi is needed (scripts/test.sh)"
        args = [SYSTEM_PYTHON, str(RTSP_SERVER), str(self.port)]
        args += [f"{m}={p}" for m, p in self.mounts.items()]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == "ready", f"RTSP server did not start: {line!r}"
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def rtsp_server() -> Iterator[Callable[..., RtspServer]]:
    servers: list[RtspServer] = []

    def start(mounts: dict[str, Path], port: int | None = None) -> RtspServer:
        server = RtspServer(mounts, port).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def agent_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge_agent", *args]


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll until `predicate()`; a bound on waiting for a real process, not a performance limit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def log_count(path: Path, text: str) -> int:
    """How many times `text` is in a process's log file so far (0 before the file exists)."""
    return path.read_text(errors="replace").count(text) if path.exists() else 0


HUB_SUBSCRIBED = "subscribed to "  # the hub's log line once its MQTT subscriptions are in place


def ffprobe_packets(path: Path) -> int:
    assert shutil.which("ffprobe"), "ffprobe (Debian ffmpeg) is needed"
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return int(out)


def ffmpeg_decodes(path: Path) -> tuple[bool, str]:
    """Decode every frame with the reference decoder; (ok, errors)."""
    proc = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True)
    return proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """The same test against both brokers: Mosquitto (production) and amqtt (embedded default)."""
    started = Broker(request.param, tmp_path / f"broker-{request.param}").start()
    yield started
    started.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    started = Broker("mosquitto", tmp_path / "broker-mosquitto").start()
    yield started
    started.stop()


# --- the browser (pytest-playwright) ----------------------------------------------------------
# Debian's Chromium (scripts/test.sh installs it): `playwright install` would download a browser,
# which this project never does. Pages are tested at a phone's size, in Chinese by default.
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": ["--no-sandbox"]}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 390, "height": 844}, "locale": "zh-CN", "has_touch": True}
