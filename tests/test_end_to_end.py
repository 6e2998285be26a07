"""Agent -> broker -> hub, with real processes and both brokers: camera events and installer
test alarms reach the hub exactly once, device state follows the agent, commands are answered."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt

from contract import Command, Event, Reply, SnapshotRef, decode, encode, topic
from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.events.ids import new_event_id
from edge_agent.events.store import LocalEvent
from tests.conftest import HUB_SUBSCRIBED, agent_cmd, free_port, log_count, wait_for
from tests.support.brokers import Broker


def hub_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hub", *args]


def hub_events(cfg: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        hub_cmd("events", "list", "--config", str(cfg), "--json"), capture_output=True, text=True, check=True
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def hub_devices(cfg: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        hub_cmd("devices", "list", "--config", str(cfg), "--json"), capture_output=True, text=True, check=True
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_agent_events_and_test_alarms_reach_the_hub(broker: Broker, tmp_path: Path, h264_file: Path) -> None:
    hub_cfg = tmp_path / "hub.yaml"
    hub_cfg.write_text(
        f"data_dir: {tmp_path / 'hub'}\nlisten: 127.0.0.1:{free_port()}\n"
        f"mqtt: {{url: '{broker.url()}', protocol: {broker.protocol}}}\n"
    )
    hub_log = tmp_path / "hub.log"
    with hub_log.open("ab") as log:
        hub = subprocess.Popen(hub_cmd("run", "--config", str(hub_cfg)), stderr=log)
    root = tmp_path / "rec"
    agent_cfg = tmp_path / "agent.yaml"
    agent_cfg.write_text(
        f"site: lianhe\ndevice: shop-12\nstorage: {{root: {root}}}\n"
        f"mqtt: {{url: '{broker.url()}', protocol: {broker.protocol}, heartbeat_seconds: 1}}\n"
        "defaults: {reconnect: {initial_seconds: 0.5, max_seconds: 1, read_timeout_seconds: 2}}\n"
        "cameras:\n"
        f"  shop: {{source: {h264_file}, detect: {{enabled: false}}}}\n"
        f"  lane: {{source: 'rtsp://127.0.0.1:{free_port()}/stream1', detect: {{enabled: false}}}}\n"
    )
    agent = Agent(parse_config(agent_cfg.read_text()))
    try:
        _run_scenario(agent, agent_cfg, hub_cfg, hub_log, broker)
    finally:
        if hub.poll() is None:
            hub.terminate()
            hub.wait(20)
    assert hub.returncode == 0


def _run_scenario(agent: Agent, agent_cfg: Path, hub_cfg: Path, hub_log: Path, broker: Broker) -> None:
    try:
        # The hub subscribes before the agent's first event.
        assert wait_for(lambda: log_count(hub_log, HUB_SUBSCRIBED) == 1, timeout=60)
        agent.start()
        assert agent.link.wait_connected(20)
        # An installer proves the site works while the agent runs: through the agent's session.
        alarm = subprocess.run(
            agent_cmd("test-alarm", "--config", str(agent_cfg), "--count", "3"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert alarm.returncode == 0, alarm.stdout + alarm.stderr
        assert "agent" in alarm.stdout
        # The hub answers nothing yet by itself; a command from a plain client gets a reply.
        replies: list[Reply] = []
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="e2e-cmd",
            protocol=mqtt.MQTTv5 if broker.protocol == "v5" else mqtt.MQTTv311,
        )
        other: list[tuple[str, bytes]] = []

        def on_message(c: object, u: object, m: mqtt.MQTTMessage) -> None:
            try:
                replies.append(decode(Reply, m.payload))
            except ValueError:
                other.append((m.topic, m.payload))

        subscribed = threading.Event()
        client.on_message = on_message
        client.on_subscribe = lambda *_: subscribed.set()
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        client.subscribe(topic("lianhe", "shop-12", "reply"), qos=1)
        assert subscribed.wait(20)  # the broker's SUBACK: replies from now on reach us
        # A hostile command is dropped without a reply and without hurting the agent.
        client.publish(topic("lianhe", "shop-12", "cmd", "ping"), b'{"v": 1, "id": ' + b"9" * 5000, qos=1)
        client.publish(topic("lianhe", "shop-12", "cmd", "reboot"), encode(Command(id="c-0", time=time.time())), qos=1)
        client.publish(topic("lianhe", "shop-12", "cmd", "ping"), encode(Command(id="c-1", time=time.time())), qos=1)
        assert wait_for(lambda: any(r.id == "c-1" and r.ok for r in replies), timeout=20), (replies, other)
        unknown = next(r for r in replies if r.id == "c-0")  # an unknown command gets a clear refusal
        assert not unknown.ok and "unknown command 'reboot'" in (unknown.error or "")
        assert {r.id for r in replies} == {"c-0", "c-1"}
        client.loop_stop()
        client.disconnect()

        # A person event: the event, then its snapshot on its own topic.
        snap_rel = "snapshots/shop/2026-11-28/person.jpg"
        (agent.root / snap_rel).parent.mkdir(parents=True, exist_ok=True)
        ok, jpeg = cv2.imencode(".jpg", np.full((360, 640, 3), 128, np.uint8))
        assert ok
        (agent.root / snap_rel).write_bytes(jpeg.tobytes())
        person_id = new_event_id()
        message = Event(
            id=person_id,
            kind="person",
            phase="new",
            camera="shop",
            time=time.time(),
            detail={"max_score": 0.9},
            snapshot=SnapshotRef(path=snap_rel),
        )
        agent.events.save(LocalEvent(message=message))

        def arrived() -> bool:
            kinds = [e["kind"] for e in hub_events(hub_cfg)]
            return kinds.count("test") == 3 and "camera_offline" in kinds and "person" in kinds

        assert wait_for(arrived, timeout=30), hub_events(hub_cfg)
        stored = hub_cfg.parent / "hub" / "snapshots" / "lianhe" / "shop-12" / f"{person_id}.jpg"
        assert wait_for(stored.exists, timeout=30)
        assert stored.read_bytes() == jpeg.tobytes()
        assert wait_for(lambda: any(d["state"] == "online" for d in hub_devices(hub_cfg)), timeout=20)
    finally:
        agent.shutdown()
    assert wait_for(lambda: any(d["state"] == "offline" for d in hub_devices(hub_cfg)), timeout=20)
    events = hub_events(hub_cfg)
    tests = [e for e in events if e["kind"] == "test"]
    assert len(tests) == 3 and all(e["test"] for e in tests)
    assert len({e["id"] for e in events}) == len(events)  # stored once each
    offline = next(e for e in events if e["kind"] == "camera_offline")
    assert offline["device"] == "shop-12" and offline["site"] == "lianhe" and offline["camera"] == "lane"
    device = hub_devices(hub_cfg)[0]
    assert device["device"] == "shop-12" and device["clean"] is True
