"""Hub ingest against real brokers (Mosquitto v5 and amqtt v3.1.1) and real hub processes.

Agents are stood in for by plain paho clients publishing contract messages, so these tests do not
depend on the agent's outbox and link (edge_agent/comms), which are tested on their own.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from contract import Event, Heartbeat, Reply, Status, encode, topic
from edge_agent.events.ids import new_event_id
from hub.broker import EmbeddedBroker, hash_password
from hub.config import ConfigError, EmbeddedBrokerConfig, HubConfig, parse_hub_config, render_hub_config
from hub.db import HubDB, WriteResult
from hub.fanout import Fanout
from hub.ingest import Ingest
from hub.parse import parse_message
from hub.records import Record
from tests.conftest import free_port, wait_for
from tests.support.brokers import Broker

REPO = Path(__file__).resolve().parents[1]
WAIT = 30.0  # bound on waiting for real processes and brokers; not a performance limit


# --- helpers ----------------------------------------------------------------------------------
def hub_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hub", *args]


def hub_config(tmp_path: Path, url: str, protocol: str, **extra: Any) -> HubConfig:
    raw: dict[str, Any] = {
        "data_dir": str(tmp_path / "hub-data"),
        "mqtt": {"url": url, "protocol": protocol},
        "listen": f"127.0.0.1:{free_port()}",  # the web server: a port of its own per test
    }
    raw.update(extra)
    return HubConfig.model_validate(raw)


def write_config(tmp_path: Path, config: HubConfig) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(json.loads(config.model_dump_json())))
    return path


def event(
    kind: str = "person", phase: str = "instant", seq: int = 0, test: bool = False, eid: str | None = None
) -> Event:
    return Event.model_validate(
        {
            "id": eid or new_event_id(),
            "kind": kind,
            "phase": phase,
            "seq": seq,
            "camera": "gate",
            "time": time.time(),
            "test": test,
            "detail": {"score": 0.9},
            "snapshot": {"path": "snapshots/x.jpg"},
        }
    )


class Publisher:
    """A plain paho client standing in for an agent."""

    def __init__(self, broker_port: int, protocol: str, client_id: str, will: tuple[str, bytes] | None = None) -> None:
        v5 = protocol == "v5"
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        self.client.max_inflight_messages_set(100)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.client.connect("127.0.0.1", broker_port)
        self.client.loop_start()
        assert wait_for(self.client.is_connected, WAIT)

    def publish(self, name: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(name, payload, qos=qos, retain=retain)
        if qos:
            info.wait_for_publish(WAIT)
            assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def running_ingest(broker: Broker, tmp_path: Path) -> Iterator[tuple[Ingest, HubDB, Broker]]:
    config = hub_config(tmp_path, broker.url(), broker.protocol)
    db = HubDB(config.db_path)
    ingest = Ingest(config, db)
    ingest.start()
    assert ingest.wait_subscribed(WAIT), "hub did not subscribe"
    reader = HubDB(config.db_path)
    yield ingest, reader, broker
    ingest.stop()
    reader.close()
    db.close()


def event_count(db: HubDB) -> int:
    return int(db.conn.execute("SELECT count(*) FROM events").fetchone()[0])


# --- config -----------------------------------------------------------------------------------
def test_empty_config_gets_every_default() -> None:
    config = parse_hub_config("")
    assert config.mqtt.client_id == "diaolou-hub"
    assert config.mqtt.protocol == "v5"
    assert config.mqtt.session_expiry_seconds == 7 * 86400
    assert config.embedded_broker.enabled is False
    assert config.listen == "127.0.0.1:8080"


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("mqtt: {sesion_expiry_seconds: 5}", "mqtt.sesion_expiry_seconds", "unknown key"),
        ("mqtt: {url: 'http://broker:1883'}", "mqtt.url", "mqtt://[user:password@]host:port"),
        ("mqtt: {protocol: v3}", "mqtt.protocol", "'v5' or 'v311'"),
        ("mqtt: {session_expiry_seconds: 1}", "mqtt.session_expiry_seconds", "greater than or equal to 60"),
        ("listen: localhost", "listen", "HOST:PORT"),
        ("embedded_broker: {port: 0}", "embedded_broker.port", "greater than or equal to 1"),
        ("limits: {max_payload_bytes: 10000000}", "limits.max_payload_bytes", "less than or equal to 65536"),
        ("embedded_broker: {enabled: true}", "mqtt.protocol", "only MQTT 3.1.1"),
        (
            "embedded_broker: {enabled: true, port: 1884}\nmqtt: {protocol: v311}",
            "mqtt.url",
            "not the embedded broker's port",
        ),
    ],
)
def test_bad_config_names_file_key_and_problem(text: str, where: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_hub_config(text, source="hub.yaml")
    assert f"hub.yaml: {where}:" in str(err.value)
    assert words in str(err.value)


def test_env_vars_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_MQTT_PASSWORD", "s3cret")
    config = parse_hub_config(
        "data_dir: data\nmqtt: {url: 'mqtt://hub:${HUB_MQTT_PASSWORD}@broker:1883'}\n", "hub.yaml", tmp_path
    )
    assert config.data_dir == tmp_path / "data"
    assert "s3cret" in config.mqtt.url
    with pytest.raises(ConfigError, match=r"hub.yaml: mqtt.url: environment variable NOPE_NOT_SET is not set"):
        parse_hub_config("mqtt: {url: 'mqtt://${NOPE_NOT_SET}@b:1883'}", "hub.yaml")


def test_rendered_config_is_complete_and_valid(tmp_path: Path) -> None:
    text = render_hub_config(tmp_path / "data", "mqtt://hub:pw@10.0.0.2:1883", "0.0.0.0:8080")
    config = parse_hub_config(text)
    assert config.mqtt.url == "mqtt://hub:pw@10.0.0.2:1883"
    assert config.listen == "0.0.0.0:8080"
    raw = yaml.safe_load(text)
    # Every field is spelled out, with its description as a comment.
    assert set(raw) == set(HubConfig.model_fields)
    assert set(raw["mqtt"]) == {
        "url",
        "protocol",
        "client_id",
        "ca_file",
        "session_expiry_seconds",
        "keepalive_seconds",
        "reconnect_max_seconds",
        "receive_maximum",
    }
    assert "# How long" not in text and "# v5: how long the broker keeps the hub's session" in text
    embedded = parse_hub_config(render_hub_config(tmp_path, "mqtt://127.0.0.1:1999", None, embedded_broker=True))
    assert embedded.embedded_broker.enabled and embedded.embedded_broker.port == 1999
    assert embedded.mqtt.protocol == "v311"


def test_cli_config_init_and_check(tmp_path: Path) -> None:
    out = subprocess.run(
        hub_cmd("config", "init", "--data", str(tmp_path / "d"), "--mqtt", "mqtt://127.0.0.1:1883"),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert out.returncode == 0, out.stderr
    path = tmp_path / "hub.yaml"
    path.write_text(out.stdout)
    check = subprocess.run(hub_cmd("config", "check", str(path)), capture_output=True, text=True, timeout=WAIT)
    assert check.returncode == 0, check.stderr
    assert "OK" in check.stdout

    path.write_text(out.stdout.replace("keepalive_seconds: 30", "keepalive_seconds: 1"))
    bad = subprocess.run(hub_cmd("config", "check", str(path)), capture_output=True, text=True, timeout=WAIT)
    assert bad.returncode == 2
    assert f"{path}: mqtt.keepalive_seconds:" in bad.stderr

    missing = subprocess.run(hub_cmd("events", "list", "--config", str(tmp_path / "nope.yaml")), capture_output=True)
    assert missing.returncode == 2
    bad_url = subprocess.run(hub_cmd("config", "init", "--data", "d", "--mqtt", "http://x"), capture_output=True)
    assert bad_url.returncode == 1
    assert b"mqtt.url" in bad_url.stderr


# --- fan-out ----------------------------------------------------------------------------------
def test_fanout_delivers_to_each_subscriber_and_isolates_failures() -> None:
    fanout: Fanout[int] = Fanout()
    seen_a: list[int] = []
    seen_b: list[int] = []

    def broken(value: int) -> None:
        raise RuntimeError("subscriber bug")

    unsubscribe_a = fanout.subscribe(seen_a.append)
    fanout.subscribe(broken)
    fanout.subscribe(seen_b.append)
    fanout.publish(1)
    unsubscribe_a()
    unsubscribe_a()  # twice is harmless
    fanout.publish(2)
    assert seen_a == [1]
    assert seen_b == [1, 2]
    assert len(fanout) == 2


def test_fanout_subscriber_may_unsubscribe_itself() -> None:
    fanout: Fanout[str] = Fanout()
    seen: list[str] = []

    def once(value: str) -> None:
        seen.append(value)
        unsubscribe()

    unsubscribe = fanout.subscribe(once)
    fanout.publish("a")
    fanout.publish("b")
    assert seen == ["a"]


# --- parsing and storage without a broker -----------------------------------------------------
@pytest.mark.parametrize(
    ("name", "payload", "cause", "site", "device"),
    [
        ("diaolou/v1/s1/d1/event", b"not json", "malformed", "s1", "d1"),
        ("diaolou/v1/s1/d1/event", b"[1, 2]", "malformed", "s1", "d1"),
        ("diaolou/v1/s1/d1/event", b"x" * 70_000, "oversized", "s1", "d1"),
        ("diaolou/v1/s1/d1/event", b'{"v": 2, "id": "x"}', "version", "s1", "d1"),
        ("diaolou/v1/s1/d1/event", b'{"v": 1, "id": "nope"}', "invalid", "s1", "d1"),
        ("diaolou/v1/s1/d1/status", b'{"v": 1, "state": "sleeping", "time": 1}', "invalid", "s1", "d1"),
        ("diaolou/v1/s1/Bad Device/event", b"{}", "topic", "s1", "Bad Device"),
        ("diaolou/v1/s1/d1/cmd/live", b"{}", "topic", "s1", "d1"),
        ("elsewhere", b"{}", "topic", "?", "?"),
    ],
)
def test_parse_message_rejects_with_cause(name: str, payload: bytes, cause: str, site: str, device: str) -> None:
    record = parse_message(name, payload, False, 1.0, 65536)
    assert (record.kind, record.cause, record.site, record.device) == ("rejection", cause, site, device)
    assert record.error


def test_db_stores_a_redelivered_event_once(tmp_path: Path) -> None:
    db = HubDB(tmp_path / "hub.db")
    ev = event()
    record = Record("event", "s1", "d1", 100.0, message=ev)
    assert db.write([record, record]).changed == [record]  # a duplicate inside one batch
    assert db.write([record]).changed == []  # and in a later batch
    rows = db.events()
    assert len(rows) == 1
    assert rows[0]["id"] == ev.id and rows[0]["detail"] == {"score": 0.9}
    assert rows[0]["snapshot"] == {"path": "snapshots/x.jpg", "crop": None}
    assert db.device("s1", "d1") is not None
    db.close()


# --- ingest against real brokers --------------------------------------------------------------
def test_events_stored_once_and_in_order_per_device(running_ingest: tuple[Ingest, HubDB, Broker]) -> None:
    ingest, db, broker = running_ingest
    fanned: list[Record] = []
    ingest.fanout.subscribe(fanned.append)
    pub = Publisher(broker.port, broker.protocol, "agent-sim")
    sent: dict[str, list[tuple[str, str, int]]] = {"d1": [], "d2": []}
    tests: set[str] = set()
    try:
        for i in range(40):
            for device in ("d1", "d2"):
                # A person event's lifecycle: same id, new -> update -> end; then an instant test event.
                eid = new_event_id()
                phases = [("new", 0), ("update", 1), ("end", 2)] if i % 4 == 0 else [("instant", 0)]
                for phase, seq in phases:
                    payload = encode(event(phase=phase, seq=seq, eid=eid, test=i % 5 == 0))
                    pub.publish(topic("s1", device, "event"), payload)
                    pub.publish(topic("s1", device, "event"), payload)  # what a redelivery looks like
                    sent[device].append((eid, phase, seq))
                    if i % 5 == 0:
                        tests.add(eid)
    finally:
        pub.close()
    total = sum(len(v) for v in sent.values())
    assert wait_for(lambda: ingest.stats.received >= 2 * total and event_count(db) >= total, WAIT)
    time.sleep(0.3)  # a straggling duplicate would show up now
    rows = db.events()
    assert len(rows) == total
    for device, expected in sent.items():
        stored = [(r["id"], r["phase"], r["seq"]) for r in rows if r["device"] == device]
        assert stored == expected  # exactly once, in the order the device sent them
    assert {r["id"] for r in rows if r["test"]} == tests
    events_fanned = [(r.device, r.message.id, r.message.phase) for r in fanned if isinstance(r.message, Event)]
    assert len(events_fanned) == total == len(set(events_fanned))  # duplicates are not fanned out
    assert ingest.stats.duplicates == total


def test_status_will_heartbeat_and_reply(running_ingest: tuple[Ingest, HubDB, Broker], tmp_path: Path) -> None:
    ingest, db, broker = running_ingest
    status_topic = topic("s1", "gate-1", "status")
    will = encode(Status(state="offline", time=time.time(), clean=False, agent_version="0.1.0"))
    online = encode(Status(state="online", time=time.time(), agent_version="0.1.0", cameras=["gate", "lane"]))
    # The agent stand-in runs in its own process so it can vanish without a goodbye (kill -9).
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from tests.test_hub import Publisher
        pub = Publisher({broker.port}, {broker.protocol!r}, "gate-1", will=({status_topic!r}, {will!r}))
        pub.publish({status_topic!r}, {online!r}, retain=True)
        print("ready", flush=True)
        time.sleep(120)
        """
    )
    agent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None and agent.stdout.readline().strip() == "ready"

        def device() -> dict[str, Any]:
            return db.device("s1", "gate-1") or {}

        assert wait_for(lambda: device().get("state") == "online", WAIT)
        assert device()["clean"] is True
        assert device()["cameras"] == ["gate", "lane"]
        assert device()["agent_version"] == "0.1.0"
        seen_online = device()["last_seen"]

        pub = Publisher(broker.port, broker.protocol, "gate-1-beats")
        try:
            time.sleep(0.05)
            beat = Heartbeat(time=time.time(), uptime_seconds=12, outbox_depth=3, cpu_percent=20.5)
            pub.publish(topic("s1", "gate-1", "heartbeat"), encode(beat), qos=0)
            assert wait_for(lambda: device().get("last_heartbeat") is not None, WAIT)
            assert device()["last_heartbeat"]["outbox_depth"] == 3
            assert device()["last_seen"] > seen_online
            reply = Reply(id="cmd-1", ok=True, time=time.time(), result={"url": "rtsp://x"})
            pub.publish(topic("s1", "gate-1", "reply"), encode(reply))
            pub.publish(topic("s1", "gate-1", "reply"), encode(reply))
            assert wait_for(lambda: len(db.replies()) == 1 and ingest.stats.received >= 4, WAIT)
            assert db.replies()[0]["result"] == {"url": "rtsp://x"}
        finally:
            pub.close()

        agent.kill()  # no DISCONNECT: the broker publishes the last will
        agent.wait(WAIT)
        assert wait_for(lambda: device().get("state") == "offline", WAIT)
        assert device()["clean"] is False
        assert device()["cameras"] == ["gate", "lane"]  # the will does not wipe what the device announced
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(WAIT)

    pub = Publisher(broker.port, broker.protocol, "gate-1")
    try:
        pub.publish(status_topic, online, retain=True)
        assert wait_for(lambda: db.device("s1", "gate-1")["state"] == "online", WAIT)  # type: ignore[index]
        goodbye = encode(Status(state="offline", time=time.time(), clean=True))
        pub.publish(status_topic, goodbye, retain=True)  # a clean shutdown says so itself
        assert wait_for(lambda: db.device("s1", "gate-1")["state"] == "offline", WAIT)  # type: ignore[index]
        assert db.device("s1", "gate-1")["clean"] is True  # type: ignore[index]
    finally:
        pub.close()


def test_garbage_is_rejected_counted_and_ingest_keeps_going(running_ingest: tuple[Ingest, HubDB, Broker]) -> None:
    ingest, db, broker = running_ingest
    pub = Publisher(broker.port, broker.protocol, "vandal")
    ev_topic = topic("s1", "d9", "event")
    garbage = [
        (ev_topic, b"\xff\xfe not json"),
        (ev_topic, b"{" * 10),
        (ev_topic, b'{"v": 1, "id": "' + b"A" * 70_000 + b'"}'),
        (ev_topic, b'{"v": 7}'),
        (ev_topic, b'{"v": 1, "kind": "person"}'),
        (topic("s1", "d9", "heartbeat"), b'{"v": 1, "time": 1, "uptime_seconds": -5}'),
        ("diaolou/v1/s1/D9!/event", encode(event())),
    ]
    try:
        for _ in range(3):
            for name, payload in garbage:
                pub.publish(name, payload)
        good = event()
        pub.publish(ev_topic, encode(good))
    finally:
        pub.close()
    assert wait_for(lambda: event_count(db) == 1, WAIT)
    assert db.events()[0]["id"] == good.id
    counts = {(r["device"], r["cause"]): r["count"] for r in db.rejections()}
    assert counts == {
        ("d9", "malformed"): 6,
        ("d9", "oversized"): 3,
        ("d9", "version"): 3,
        ("d9", "invalid"): 6,
        ("D9!", "topic"): 3,
    }
    assert ingest.stats.rejected == 21
    assert ingest.client.is_connected()


def test_a_failing_commit_is_retried_and_loses_nothing(mosquitto: Broker, tmp_path: Path) -> None:
    config = hub_config(tmp_path, mosquitto.url(), mosquitto.protocol)
    db = HubDB(config.db_path)
    real_write = db.write
    failures = [sqlite3.OperationalError("disk I/O error"), sqlite3.OperationalError("database is locked")]

    def flaky_write(records: Any) -> WriteResult:
        if failures:
            raise failures.pop(0)
        return real_write(records)

    db.write = flaky_write  # type: ignore[method-assign]
    ingest = Ingest(config, db)
    ingest.start()
    try:
        assert ingest.wait_subscribed(WAIT)
        pub = Publisher(mosquitto.port, mosquitto.protocol, "agent-disk")
        try:
            ids = []
            for _ in range(5):
                ev = event()
                pub.publish(topic("s1", "d1", "event"), encode(ev))
                ids.append(ev.id)
        finally:
            pub.close()
        reader = HubDB(config.db_path)
        try:
            assert wait_for(lambda: [r["id"] for r in reader.events()] == ids, WAIT)
        finally:
            reader.close()
        assert not failures
    finally:
        ingest.stop()
        db.close()


def test_rejection_counters_are_bounded(tmp_path: Path) -> None:
    config = hub_config(tmp_path, "mqtt://127.0.0.1:1", "v5", limits={"max_rejection_keys": 10})
    db = HubDB(config.db_path)
    ingest = Ingest(config, db)  # never started: only the accounting is exercised
    records = [
        ingest._account_rejection(parse_message(f"diaolou/v1/s1/d{i}/event", b"x", False, 1.0, 65536))
        for i in range(25)
    ]
    db.write(records)
    rows = db.rejections()
    assert len(rows) == 11
    assert {"site": "*", "device": "*", "cause": "malformed", "count": 15}.items() <= rows[0].items()
    db.close()


# --- the hub process killed and restarted -----------------------------------------------------
class HubProcess:
    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HubProcess:
        self.log_path.write_bytes(b"")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            hub_cmd("run", "--config", str(self.config_path)), stdout=log, stderr=log, cwd=REPO
        )
        log.close()
        assert wait_for(lambda: "subscribed to" in self.log_path.read_text(), WAIT), self.log_path.read_text()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(WAIT)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(WAIT)


def test_hub_killed_mid_stream_loses_nothing(mosquitto: Broker, tmp_path: Path) -> None:
    """Production broker only: the embedded broker runs inside the hub process, so a hub killed
    with -9 takes its broker (and the messages it holds) with it; see docs/mqtt.md."""
    broker = mosquitto
    config = hub_config(tmp_path, broker.url(), broker.protocol)
    hub = HubProcess(write_config(tmp_path, config), tmp_path / "hub.log").start()
    reader = HubDB(config.db_path)
    pub = Publisher(broker.port, broker.protocol, "agent-crash")
    # down: the hub is dead for sure; restarting: it may or may not have subscribed yet.
    sent: dict[str, list[str]] = {"up": [], "down": [], "restarting": [], "restarted": []}
    phase = ["up"]
    stop = threading.Event()
    failure: list[BaseException] = []

    def agent() -> None:  # publishes steadily while the hub is killed and restarted
        try:
            while not stop.is_set():
                ev = event()
                current = phase[0]
                pub.publish(topic("s1", "d1", "event"), encode(ev))
                sent[current].append(ev.id)
                time.sleep(0.002)
        except BaseException as exc:
            failure.append(exc)

    publisher = threading.Thread(target=agent)
    publisher.start()
    try:
        assert wait_for(lambda: event_count(reader) >= 150, WAIT, interval=0.01)
        hub.kill()  # kill -9 mid-stream: no flush, no acknowledgement for what is in flight
        phase[0] = "down"
        time.sleep(1.0)
        phase[0] = "restarting"
        hub.start()
        phase[0] = "restarted"
        assert wait_for(lambda: len(sent["restarted"]) >= 150, WAIT)
        stop.set()
        publisher.join(WAIT)
        assert not failure
        assert sent["down"], "the agent published nothing while the hub was down"
        every = sent["up"] + sent["down"] + sent["restarting"] + sent["restarted"]
        assert wait_for(lambda: event_count(reader) >= len(every), WAIT)
        time.sleep(0.5)
        stored = [r["id"] for r in reader.events()]
        assert len(stored) == len(set(stored)), "an event was stored twice"
        assert stored == every  # every event exactly once, in the order the device sent them
    finally:
        stop.set()
        publisher.join(WAIT)
        pub.close()
        if hub.proc is not None and hub.proc.poll() is None:
            assert hub.terminate() == 0
        reader.close()


def test_embedded_broker_keeps_the_hub_session_while_it_is_away(tmp_path: Path) -> None:
    port = free_port()
    config = hub_config(
        tmp_path,
        f"mqtt://127.0.0.1:{port}",
        "v311",
        embedded_broker={"enabled": True, "port": port},
    )
    embedded = EmbeddedBroker(config.embedded_broker, config.mqtt.session_expiry_seconds)
    embedded.start()
    db = HubDB(config.db_path)
    try:
        first = Ingest(config, db)
        first.start()
        assert first.wait_subscribed(WAIT)
        first.stop()
        pub = Publisher(port, "v311", "agent-embedded")
        ids = []
        try:
            for _ in range(20):
                ev = event()
                pub.publish(topic("s1", "d1", "event"), encode(ev))
                ids.append(ev.id)
        finally:
            pub.close()
        second = Ingest(config, db)
        second.start()
        try:
            assert wait_for(lambda: event_count(db) == 20, WAIT)
            assert [r["id"] for r in db.events()] == ids
        finally:
            second.stop()
    finally:
        db.close()
        embedded.stop()


def test_embedded_broker_refuses_anonymous_when_told_and_checks_passwords(tmp_path: Path) -> None:
    port = free_port()
    passwords = tmp_path / "passwd"
    passwords.write_text(f"# embedded broker users\ngate-1:{hash_password('right')}\n")
    embedded = EmbeddedBroker(EmbeddedBrokerConfig(port=port, anonymous="never", password_file=passwords))
    embedded.start()

    def connects(user: str | None, password: str | None) -> bool:
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"t-{user}")
        if user:
            client.username_pw_set(user, password)
        result: list[bool] = []
        done = threading.Event()

        def on_connect(c: mqtt.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
            result.append(not reason.is_failure)
            done.set()

        client.on_connect = on_connect
        client.on_disconnect = lambda *a: done.set()
        client.connect("127.0.0.1", port)
        client.loop_start()
        done.wait(10)
        client.disconnect()
        client.loop_stop()
        return result == [True]

    try:
        assert connects("gate-1", "right")
        assert not connects("gate-1", "wrong")
        assert not connects(None, None)
    finally:
        embedded.stop()


def test_cli_run_with_embedded_broker_stores_an_event(tmp_path: Path) -> None:
    port = free_port()
    init = subprocess.run(
        hub_cmd(
            "config",
            "init",
            "--data",
            str(tmp_path / "data"),
            "--mqtt",
            f"mqtt://127.0.0.1:{port}",
            "--embedded-broker",
        ),
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert init.returncode == 0, init.stderr
    config_path = tmp_path / "hub.yaml"
    config_path.write_text(init.stdout)
    hub = HubProcess(config_path, tmp_path / "hub.log").start()
    try:
        pub = Publisher(port, "v311", "gate-7")
        try:
            alarm = event(kind="test", test=True)
            pub.publish(topic("village", "gate-7", "event"), encode(alarm))
            pub.publish(topic("village", "gate-7", "event"), b"garbage")
        finally:
            pub.close()

        def listed() -> list[dict[str, Any]]:
            out = subprocess.run(
                hub_cmd("events", "list", "--config", str(config_path), "--json"),
                capture_output=True,
                text=True,
                timeout=WAIT,
            )
            assert out.returncode == 0, out.stderr
            return [json.loads(line) for line in out.stdout.splitlines()]

        assert wait_for(lambda: len(listed()) == 1, WAIT)
        row = listed()[0]
        assert row["id"] == alarm.id
        assert (row["site"], row["device"], row["camera"], row["kind"], row["phase"]) == (
            "village",
            "gate-7",
            "gate",
            "test",
            "instant",
        )
        assert row["test"] is True
        assert row["time"].endswith("Z")
        table = subprocess.run(
            hub_cmd("events", "list", "--config", str(config_path), "--device", "gate-7"),
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert table.returncode == 0 and alarm.id in table.stdout and "instant" in table.stdout
        later = subprocess.run(
            hub_cmd("events", "list", "--config", str(config_path), "--json", "--since", "2999-01-01T00:00:00Z"),
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert later.returncode == 0 and later.stdout == ""
        rejections = subprocess.run(
            hub_cmd("rejections", "--config", str(config_path), "--json"), capture_output=True, text=True, timeout=WAIT
        )
        assert [json.loads(x)["cause"] for x in rejections.stdout.splitlines()] == ["malformed"]
        devices = subprocess.run(
            hub_cmd("devices", "list", "--config", str(config_path), "--json"),
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert json.loads(devices.stdout.splitlines()[0])["device"] == "gate-7"
    finally:
        assert hub.terminate() == 0
    assert "ingest stopped" in (tmp_path / "hub.log").read_text()


def test_cli_run_fails_cleanly_when_the_embedded_port_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = hub_config(
            tmp_path, f"mqtt://127.0.0.1:{port}", "v311", embedded_broker={"enabled": True, "port": port}
        )
        out = subprocess.run(
            hub_cmd("run", "--config", str(write_config(tmp_path, config)), "--seconds", "5"),
            capture_output=True,
            text=True,
            timeout=WAIT,
            env={**os.environ},
        )
    assert out.returncode == 1
    assert "embedded broker cannot listen" in out.stderr


def test_snapshots_are_stored_as_files_and_garbage_is_rejected(broker: Broker, tmp_path: Path) -> None:
    """A JPEG on .../snapshot/<event id> lands beside hub.db; a non-JPEG or a bad id is counted."""
    import cv2
    import numpy as np

    config = hub_config(tmp_path, broker.url(), broker.protocol)
    hub = HubProcess(write_config(tmp_path, config), tmp_path / "hub.log").start()
    reader = HubDB(config.db_path)
    try:
        ok, jpeg = cv2.imencode(".jpg", np.full((90, 160, 3), 200, np.uint8))
        assert ok
        event_id = "01M8FZE226DRNCPT2VXMGBF1WV"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="snap-pub",
            protocol=mqtt.MQTTv5 if broker.protocol == "v5" else mqtt.MQTTv311,
        )
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        # A device's own event first: the hub takes snapshots only for events it has (see test_hostile_ingest).
        client.publish(topic("s1", "d1", "event"), encode(event(eid=event_id)), qos=1).wait_for_publish(10)
        client.publish(topic("s1", "d1", "snapshot", event_id), jpeg.tobytes(), qos=1).wait_for_publish(10)
        client.publish(f"diaolou/v1/s1/d1/snapshot/{event_id}", b"not a jpeg", qos=1).wait_for_publish(10)
        client.publish("diaolou/v1/s1/d1/snapshot/..%2F..%2Fetc", jpeg.tobytes(), qos=1).wait_for_publish(10)
        client.loop_stop()
        client.disconnect()
        stored = config.db_path.parent / "snapshots" / "s1" / "d1" / f"{event_id}.jpg"
        assert wait_for(stored.exists, WAIT)
        assert stored.read_bytes() == jpeg.tobytes()

        def rejected() -> dict[str, int]:
            rows = reader.conn.execute("select cause, count from rejections where device = 'd1'").fetchall()
            return {cause: count for cause, count in rows}

        assert wait_for(lambda: rejected().get("invalid") == 1 and rejected().get("topic") == 1, WAIT), rejected()
        assert not list((config.db_path.parent / "snapshots").rglob("*etc*"))
    finally:
        assert hub.terminate() == 0
