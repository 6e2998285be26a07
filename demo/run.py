"""The demo's run: the hub (embedded broker, web UI) as its own process, three users, and one
agent in this process with one simulated camera (a looped video file) recording into a ring buffer.

It uses the real footage in ../shared/data/video when it is there, else makes an H.264 clip
with PyAV. When stopped (Ctrl-C or --seconds) it prints the timeline and cuts a clip of the
last 15 seconds with its evidence manifest.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.agent import Agent
from edge_agent.config import load_config
from edge_agent.config.template import render_config
from edge_agent.record.clip import ClipError, export_clip, find_segments
from edge_agent.record.segment import iso
from edge_agent.record.timeline import build_timeline
from edge_agent.testvideo import make_street_h264
from hub.config import load_hub_config, render_hub_config
from hub.security import generate_password
from hub.services import accounts, audit
from hub.store import connect, open_store
from models.registry import install_model

log = logging.getLogger(__name__)
SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_FOOTAGE = SHARED / "data" / "video" / "one-by-one-person-detection.mp4"
SHARED_YOLOX = SHARED / "models" / "yolox_nano.onnx"


def demo_video(directory: Path) -> Path:
    """The real footage in ../shared, else a generated minute of a street that four people walk
    across one at a time (edge_agent.testvideo.make_street_h264): the built-in HOG detector finds
    each of them, so a fresh machine shows an alert too, one per pass."""
    if SHARED_FOOTAGE.exists():
        return SHARED_FOOTAGE
    path = directory / "simulated-street.mp4"
    if not path.exists():
        print("making a 60 s H.264 video of a street with people walking by (simulated camera)...", flush=True)
        partial = path.with_name(path.stem + ".partial.mp4")  # a stopped first run leaves no broken clip
        make_street_h264(partial, seconds=60, fps=15, width=1280, height=720, gop=30)
        partial.replace(path)
    return path


DEMO_SITE, DEMO_DEVICE, DEMO_CAMERA = "demo-village", "demo-box", "demo-cam"


def make_users(hub_config: Path, directory: Path) -> list[tuple[str, str, str]]:
    """An admin, a shop owner (the demo camera) and a police user (the demo site), each with a
    generated password; written to logins.txt (mode 0600) beside the demo's data."""
    config = load_hub_config(hub_config)
    open_store(config.db_path)
    conn = connect(config.db_path)
    logins = []
    try:
        existing = {u.username for u in accounts.list_users(conn)}
        for username, role, cameras, sites in (
            ("admin", "admin", [], []),
            ("shop", "shop_owner", [f"{DEMO_SITE}.{DEMO_DEVICE}.{DEMO_CAMERA}"], []),
            ("police", "police", [], [DEMO_SITE]),
        ):
            password = generate_password()
            if username in existing:
                accounts.set_password(conn, audit.CLI, username, password)
            else:
                accounts.add_user(conn, audit.CLI, username, password, role, cameras, sites)
            logins.append((username, role, password))
    finally:
        conn.close()
    path = directory / "logins.txt"
    path.write_text("".join(f"{u}\t{r}\t{p}\n" for u, r, p in logins), encoding="utf-8")
    path.chmod(0o600)
    return logins


def run_demo(directory: Path, seconds: float | None = None, web_port: int = 8080) -> int:
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    video = demo_video(directory)
    models_dir = directory / "models"
    if SHARED_YOLOX.exists() and not (models_dir / "yolox-nano.onnx").exists():
        # The recommended detector, from the team's shared models (SHA-256 checked); without it
        # the demo uses the built-in HOG people detector.
        install_model("yolox-nano", models_dir, str(SHARED_YOLOX))
    # The hub with its embedded one-box broker, as its own process (what `diaolou-hub run` does).
    port = _free_port()
    hub_config = directory / "hub.yaml"
    listen = f"127.0.0.1:{web_port or _free_port()}"
    hub_config.write_text(
        render_hub_config(directory / "hub", mqtt=f"mqtt://127.0.0.1:{port}", listen=listen, embedded_broker=True),
        encoding="utf-8",
    )
    logins = make_users(hub_config, directory)
    # Its own session: Ctrl-C stops the demo, and the demo stops the hub after the agent's last events.
    hub = subprocess.Popen(
        [sys.executable, "-m", "hub", "--log-level", "WARNING", "run", "--config", str(hub_config)],
        start_new_session=True,
    )
    if not _wait_broker(port, 30):
        hub.terminate()
        print("the hub's embedded broker did not start; see its log above")
        return 1
    config_path = directory / "agent.yaml"
    text = render_config(
        storage=directory / "recordings",
        cameras=[(DEMO_CAMERA, str(video))],
        site=DEMO_SITE,
        device=DEMO_DEVICE,
        models_dir=models_dir,
        mqtt=f"mqtt://127.0.0.1:{port}",
        mqtt_protocol="v311",  # the embedded broker speaks MQTT 3.1.1 (production: Mosquitto, v5)
    )
    config_path.write_text(text, encoding="utf-8")
    config = load_config(config_path)
    print(f"config: {config_path}\nrecordings: {config.storage.root}\ncamera {DEMO_CAMERA} <- {video}")
    print(f"\nweb UI: http://{listen}/  (phones on this network: edit listen in {hub_config})")
    for username, role, password in logins:
        print(f"  sign in as {username:7} ({role}): password {password}")
    print(f"  (also in {directory / 'logins.txt'})\n")
    print("recording; press Ctrl-C to stop" + (f" (stops by itself after {seconds:.0f} s)" if seconds else ""))
    agent = Agent(config)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        agent.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.time()
    try:
        agent.start()
    except Exception:
        hub.terminate()  # never leave the hub behind
        raise
    try:
        while not agent.stop_event.wait(5):
            for status in agent.statuses():
                line = f"  {status.camera}: {status.state}, {status.fps} fps, {status.segments} segments, "
                line += f"{status.bytes / 1e6:.1f} MB"
                analysis = agent.analysis.get(status.camera)
                if analysis is not None:
                    a = analysis.status
                    line += f"; {a.frames} frames analysed, {a.detector_runs} detector runs, {a.events} person events"
                print(line, flush=True)
            if seconds is not None and time.time() - started >= seconds:
                break
    finally:
        agent.shutdown()
        time.sleep(1.0)  # the last messages reach the hub
        hub.terminate()
        hub.wait(30)
    code = _report(config_path, started)
    _report_hub(hub_config)
    return code


def _wait_broker(port: int, timeout: float) -> bool:
    """Until the broker answers an MQTT CONNECT. A bare TCP probe would do, but the embedded
    broker logs a connection that sends nothing as an ERROR, the first line a user would see."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="diaolou-demo-probe")
        try:
            client.connect("127.0.0.1", port, keepalive=10)
            client.loop(timeout=1.0)  # reads the CONNACK
            answered = client.is_connected()
            client.disconnect()  # sends DISCONNECT and closes the socket
        except OSError:
            answered = False
        if answered:
            return True
        time.sleep(0.1)
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _report_hub(hub_config: Path) -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "hub", "events", "list", "--config", str(hub_config)], capture_output=True, text=True
    )
    print("\nevents at the hub (over MQTT):")
    print(listed.stdout.rstrip() or f"  none ({listed.stderr.strip()})")


def _report(config_path: Path, started: float) -> int:
    from edge_agent.agent import RingBuffer

    config = load_config(config_path)
    storage = RingBuffer.open(config)
    try:
        end = time.time()
        segments = find_segments(storage.root, storage.index, DEMO_CAMERA, started - 60, end)
        timeline = build_timeline(DEMO_CAMERA, segments, started - 60, end)
        print(f"\ntimeline: {timeline.recorded_seconds:.1f} s recorded in {len(segments)} segments")
        for span in timeline.spans:
            print(f"  {iso(span.start)} .. {iso(span.end)}")
        if not timeline.spans:
            print("nothing recorded (see the log above for the camera's error)")
            return 1
        last = timeline.spans[-1]
        out = config.storage.root.parent / "clips" / "last-15s.mp4"
        try:
            manifest = export_clip(
                storage.root,
                storage.index,
                DEMO_CAMERA,
                max(last.start, last.end - 15),
                last.end,
                out,
                site=config.site,
                device=config.device,
            )
        except ClipError as exc:
            print(f"clip: {exc}")
            return 1
        print(f"clip: {out} ({manifest.bytes / 1e6:.2f} MB, {manifest.actual_start} .. {manifest.actual_end})")
        print(f"  sha256 {manifest.sha256}; manifest {out}.manifest.json")
        people = [e for e in storage.events.list(camera=DEMO_CAMERA, kind="person") if e.time >= started - 60]
        print(f"person events: {len(people)}")
        for event in people:
            m, person = event.message, event.person
            until = iso(m.end) if m.end else "(open)"
            score = person.max_score if person else None
            snapshot = storage.root / m.snapshot.path if m.snapshot else "(none)"
            print(f"  {iso(m.time)} .. {until}  score {score}  snapshot {snapshot}")
    finally:
        storage.close()
    return 0
