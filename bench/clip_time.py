"""An evidence clip of 10 minutes, from a police user's request to a package the hub can serve,
against cutting the same clip on the box with `diaolou-agent clip` (the peer: the local cut alone,
no MQTT, no hold, no upload, no hash check at the hub).

A real `diaolou-hub run`, Mosquitto and an agent (in this process) whose ring buffer holds
11 minutes recorded from a 640x360 15 fps H.264 sub stream (2 s GOP, 4 s segments) before the
hub is asked. Phases, from the hub's own status: queued (command waiting for delivery) ->
building (the box reported it started) -> uploading (the first bytes reached the hub) -> ready
(MP4 and manifest stored and checked). The clip's size and throughput are printed too.

    .venv/bin/python bench/clip_time.py [--minutes 10] [--repeats 3]

Writes bench/results/clip_time.md and .json. Scratch: bench/work/clip_time/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge_agent.agent import Agent  # noqa: E402
from edge_agent.config import parse_config  # noqa: E402
from edge_agent.record.index import SegmentIndex  # noqa: E402
from edge_agent.record.segment import iso  # noqa: E402
from edge_agent.testvideo import make_h264  # noqa: E402
from tests.conftest import agent_cmd, wait_for  # noqa: E402
from tests.support.brokers import Broker  # noqa: E402
from tests.support.recording import record_file  # noqa: E402
from tests.test_hub import HubProcess, hub_cmd, hub_config, write_config  # noqa: E402
from tests.test_web_api import PASSWORD, make_hub_data  # noqa: E402

WORK = REPO / "bench" / "work" / "clip_time"
RESULTS = REPO / "bench" / "results"
WAIT = 60.0


def agent_yaml(root: Path, broker: Broker, hub_url: str, token_file: Path, video: Path) -> str:
    return (
        f"site: lanxi\ndevice: shop-1\nstorage: {{root: {root}, index_flush_seconds: 0}}\n"
        f"mqtt: {{url: '{broker.url()}', protocol: {broker.protocol}, heartbeat_seconds: 1}}\n"
        f"hub: {{url: '{hub_url}', token_file: '{token_file}'}}\n"
        f"cameras:\n  door: {{source: {video}, detect: {{enabled: false}}, record: {{segment_seconds: 4}}}}\n"
    )


def one_run(minutes: float, video: Path, run: int) -> dict[str, Any]:
    tmp = WORK / f"run{run}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    root = tmp / "rec"
    index = SegmentIndex(root)
    recorded_from = time.time() - minutes * 60 - 120
    record_file(root, index, video, camera="door", start=recorded_from, segment_seconds=4.0)
    index.close()
    broker = Broker("mosquitto", tmp / "broker").start()
    config = hub_config(tmp, broker.url(), broker.protocol)
    make_hub_data(config.data_dir)
    hub_file = write_config(tmp, config)
    token = subprocess.run(
        hub_cmd("devices", "token", "--config", str(hub_file), "--site", "lanxi", "--device", "shop-1"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    token_file = tmp / "hub-token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    base = f"http://{config.listen}"
    hub = HubProcess(hub_file, tmp / "hub.log").start()
    agent_file = tmp / "agent.yaml"
    agent_file.write_text(agent_yaml(root, broker, base, token_file, video))
    agent = Agent(parse_config(agent_file.read_text()))
    start, end = recorded_from + 30.0, recorded_from + 30.0 + minutes * 60
    try:
        assert wait_for(lambda: "web UI and API on" in hub.log_path.read_text(), WAIT)
        police = httpx.post(f"{base}/api/v1/auth/login", json={"username": "police1", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {police.json()['token']}"}
        agent.start()
        assert agent.link is not None and agent.link.wait_connected(WAIT)
        assert wait_for(lambda: bool(agent.index.segments("door", time.time() - 30, time.time() + 60)), WAIT)
        body = {"camera": "lanxi.shop-1.door", "start": start, "end": end, "reason": "bench 10 min"}
        asked = time.monotonic()
        clip_id = httpx.post(f"{base}/api/v1/clips", json=body, headers=auth).json()["id"]
        seen: dict[str, float] = {}
        state: dict[str, Any] = {}
        while "ready" not in seen and "failed" not in seen and time.monotonic() - asked < 600:
            state = httpx.get(f"{base}/api/v1/clips/{clip_id}", headers=auth).json()
            seen.setdefault(state["status"], time.monotonic() - asked)
            time.sleep(0.02)
        if "ready" not in seen:
            raise SystemExit(f"the clip did not become ready: {state}")
    finally:
        agent.shutdown()
        hub.terminate()
        broker.stop()
    # The peer: the same window cut on the box by the CLI (the agent stopped, its files at rest).
    t0 = time.monotonic()
    subprocess.run(
        agent_cmd(
            "clip",
            "--config",
            str(agent_file),
            "--camera",
            "door",
            "--start",
            iso(start),
            "--end",
            iso(end),
            "--out",
            str(tmp / "local.mp4"),
        ),
        check=True,
        capture_output=True,
    )
    local = time.monotonic() - t0
    building = seen.get("building", seen.get("uploading", seen["ready"]))
    uploading = seen.get("uploading", seen["ready"])
    return {
        "total_s": seen["ready"],
        "queued_s": building,
        "building_s": uploading - building,
        "uploading_s": seen["ready"] - uploading,
        "local_cli_s": local,
        "bytes": state["bytes"],
        "local_bytes": (tmp / "local.mp4").stat().st_size,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    video = WORK / f"sub-{args.minutes:g}min.mp4"
    if not video.exists():
        make_h264(video, seconds=args.minutes * 60 + 90, fps=15, width=640, height=360, gop=30, bitrate=512_000)
    runs = [one_run(args.minutes, video, n) for n in range(args.repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    lines = [
        f"# Evidence clip of {args.minutes:g} min: request to ready ({args.repeats} runs, medians)",
        "",
        "| phase | seconds |",
        "|---|---|",
        f"| queued (command to the box, until it reports building) | {med['queued_s']:.2f} |",
        f"| building (cut from the ring buffer, hold) | {med['building_s']:.2f} |",
        f"| uploading (HTTP, SHA-256 check, manifest) | {med['uploading_s']:.2f} |",
        f"| **request to ready** | **{med['total_s']:.2f}** |",
        f"| peer: `diaolou-agent clip` on the box, same window | {med['local_cli_s']:.2f} |",
        "",
        f"Ratio request-to-ready / local cut: {med['total_s'] / med['local_cli_s']:.2f}x. "
        f"Clip {med['bytes'] / 1e6:.1f} MB (local cut {med['local_bytes'] / 1e6:.1f} MB).",
        "",
        "Per run (total, local): " + ", ".join(f"{r['total_s']:.2f}/{r['local_cli_s']:.2f}" for r in runs),
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "clip_time.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "clip_time.json").write_text(
        json.dumps({"minutes": args.minutes, "runs": runs, "median": med}, indent=2)
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
