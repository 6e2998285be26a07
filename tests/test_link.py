"""The MQTT link against real brokers (Mosquitto v5 and the embedded amqtt v3.1.1).

What must hold: every outbox message reaches a subscriber, in enqueue order, and leaves the
outbox only once the broker acknowledged it, whatever breaks in between (the connection, the
broker, the agent process). Duplicates after a fault are allowed (the hub is idempotent), so
fault tests compare the order of first arrivals and the set of unique ids.

A small TCP "gate" sits between the link and the broker where a test needs to cut the link's
connection without a DISCONNECT, or to hold the link back until the test's subscriber is
subscribed again after a broker restart (amqtt keeps no sessions across a restart).

Run as a script (`python -m tests.test_link run-link ...`) this module is the agent-like
process that the kill -9 tests kill.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from contract import Event, Heartbeat, Status, decode, topic
from edge_agent.capture.camera import CameraStatus
from edge_agent.comms.heartbeat import HeartbeatBuilder
from edge_agent.comms.link import MqttLink, parse_broker_url
from edge_agent.comms.outbox import AgentLock, Outbox, OutboxMessage
from edge_agent.comms.test_alarm import send_test_alarms
from edge_agent.comms.writer import OutboxWriter
from edge_agent.config.schema import AgentConfig, MqttConfig
from edge_agent.events.ids import new_event_id
from tests.conftest import REPO, free_port, wait_for
from tests.support.brokers import Broker

SITE, DEVICE = "lane3", "box1"
EVENT_TOPIC = topic(SITE, DEVICE, "event")
STATUS_TOPIC = topic(SITE, DEVICE, "status")
WAIT = 30.0  # bound on waiting for real processes and brokers; never a performance limit


# --- helpers ----------------------------------------------------------------------------------
class Subscriber:
    """A plain paho client that records what arrives on the device's topics, resubscribing after
    every reconnect (the broker may have been restarted without its sessions)."""

    def __init__(self, broker: Broker, name: str = "test-sub", login: tuple[str, str] | None = None) -> None:
        self.broker = broker
        self.lock = threading.Lock()
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subacks = 0
        v5 = broker.protocol == "v5"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=name,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,
        )
        self.client.reconnect_delay_set(1, 1)
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"diaolou/v1/{SITE}/{DEVICE}/#", 1)
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_subscribe(self, *args: Any) -> None:
        with self.lock:
            self.subacks += 1

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def start(self) -> Subscriber:
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.loop_start()
        assert wait_for(lambda: self.subacks >= 1, WAIT, 0.02), "subscriber never subscribed"
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def event_ids(self) -> list[str]:
        with self.lock:
            return [decode(Event, p).id for t, p, _ in self.messages if t == EVENT_TOPIC]

    def events(self) -> list[Event]:
        with self.lock:
            return [decode(Event, p) for t, p, _ in self.messages if t == EVENT_TOPIC]

    def statuses(self) -> list[tuple[Status, bool]]:
        with self.lock:
            return [(decode(Status, p), r) for t, p, r in self.messages if t == STATUS_TOPIC]

    def has_all(self, ids: list[str]) -> bool:
        return set(ids) <= set(self.event_ids())


def first_arrivals(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


def retained_status(broker: Broker) -> tuple[Status, bool]:
    """What a newcomer (the hub after a restart) sees on the status topic."""
    sub = Subscriber(broker, name=f"probe-{time.monotonic_ns()}").start()
    try:
        assert wait_for(lambda: bool(sub.statuses()), 10, 0.02), "no retained status"
        return sub.statuses()[-1]
    finally:
        sub.stop()


def events(count: int) -> list[Event]:
    return [
        Event(id=new_event_id(), kind="person", phase="instant", camera="cam1", time=time.time(), detail={"n": n})
        for n in range(count)
    ]


def enqueue(box: Outbox, batch: list[Event]) -> None:
    """Queue events while no link runs (the agent starting with a backlog)."""
    writer = OutboxWriter(box, SITE, DEVICE)
    for event in batch:
        assert writer.event(event).seq is not None


def writer_of(link: MqttLink) -> OutboxWriter:
    """The agent's way out for a running link: the writer wakes the link's sender."""
    return OutboxWriter(link.outbox, SITE, DEVICE, wake=link.notify)


def mqtt_config(broker: Broker, url: str | None = None) -> MqttConfig:
    return MqttConfig(url=url or broker.url(), protocol=broker.protocol, keepalive_seconds=5, heartbeat_seconds=1)


def make_link(broker: Broker, box: Outbox, url: str | None = None, **kwargs: Any) -> MqttLink:
    kwargs.setdefault("reconnect_max_seconds", 2)
    return MqttLink(mqtt_config(broker, url), SITE, DEVICE, box, cameras=["cam1"], **kwargs)


class Gate:
    """A TCP relay to the broker that the test can cut (abruptly, no MQTT DISCONNECT) and hold shut."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.open = True
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Close every relayed connection and refuse new ones until `reopen()`."""
        self.open = False
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def reopen(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.server.close()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "agent" / "outbox.db")
    yield box
    box.close()


@pytest.fixture
def subscriber(broker: Broker) -> Iterator[Subscriber]:
    sub = Subscriber(broker).start()
    yield sub
    sub.stop()


# --- tests ------------------------------------------------------------------------------------
def test_broker_url_parsing() -> None:
    a = parse_broker_url("mqtt://box%40lane3:p%40ss%3Aw0rd@broker.example:1884")
    assert (a.host, a.port, a.tls, a.username, a.password) == ("broker.example", 1884, False, "box@lane3", "p@ss:w0rd")
    assert "p@ss" not in a.display()
    b = parse_broker_url("mqtts://hub.example")
    assert (b.port, b.tls, b.username, b.password) == (8883, True, None, None)
    with pytest.raises(ValueError, match="mqtt://"):
        parse_broker_url("http://hub.example")


def test_messages_arrive_in_order_exactly_once_and_leave_the_outbox(
    broker: Broker, outbox: Outbox, subscriber: Subscriber
) -> None:
    before = events(150)
    enqueue(outbox, before)  # queued while no link runs (the agent starting with a backlog)
    link = make_link(broker, outbox)
    writer = writer_of(link)
    link.start()
    try:
        after = events(150)
        for event in after:  # and enqueued while it runs, as the agent does
            writer.event(event)
        expected = [e.id for e in before + after]
        assert wait_for(lambda: subscriber.has_all(expected), WAIT), f"{len(subscriber.event_ids())} arrived"
        assert wait_for(lambda: outbox.depth == 0, WAIT)
        assert subscriber.event_ids() == expected  # no fault, so no duplicate either
        stats = link.stats()
        assert stats.connected and stats.connects == 1 and stats.sent == 300 and stats.acked == 300
        assert stats.in_flight == 0 and stats.last_error is None
    finally:
        link.stop()


def test_a_dead_network_loop_is_restarted(broker: Broker, outbox: Outbox, subscriber: Subscriber) -> None:
    link = make_link(broker, outbox)
    writer = writer_of(link)
    link.start()
    try:
        assert link.wait_connected(WAIT)
        link._client.loop_stop()  # as if paho's thread had died of an unhandled error
        batch = events(10)
        for event in batch:
            writer.event(event)
        assert wait_for(lambda: subscriber.has_all([e.id for e in batch]), WAIT)
        assert link._client._thread is not None and link._client._thread.is_alive()
    finally:
        link.stop()


def test_retained_online_status_and_clean_offline_on_stop(broker: Broker, outbox: Outbox) -> None:
    link = make_link(broker, outbox)
    link.start()
    try:
        assert link.wait_connected(WAIT)
        status, retained = retained_status(broker)
        assert status.state == "online" and status.clean and retained and status.cameras == ["cam1"]
    finally:
        link.stop()
    assert not link.connected
    status, retained = retained_status(broker)
    assert status.state == "offline" and status.clean is True and retained


def test_last_will_says_offline_unclean_when_the_connection_dies(
    broker: Broker, outbox: Outbox, subscriber: Subscriber
) -> None:
    gate = Gate(broker.port)
    link = make_link(broker, outbox, url=gate.url())
    commands: list[tuple[str, bytes]] = []
    cmd_topic = topic(SITE, DEVICE, "cmd", "ping")
    link.subscribe(topic(SITE, DEVICE, "cmd", "ping"), lambda t, p: commands.append((t, p)))
    link.start()
    try:
        assert link.wait_connected(WAIT)
        assert wait_for(lambda: any(s.state == "online" for s, _ in subscriber.statuses()), WAIT)
        gate.cut()  # the socket dies without an MQTT DISCONNECT, as when the village link drops
        assert wait_for(lambda: any(s.state == "offline" for s, _ in subscriber.statuses()), WAIT)
        status = next(s for s, _ in subscriber.statuses() if s.state == "offline")
        assert status.clean is False
        status, retained = retained_status(broker)
        assert status.state == "offline" and not status.clean and retained
        assert wait_for(lambda: not link.connected, WAIT)
        assert "lost the connection" in (link.last_error or "")
        # Back online once the path returns.
        gate.reopen()
        assert link.wait_connected(WAIT)
        assert wait_for(lambda: subscriber.statuses()[-1][0].state == "online", WAIT)

        # Subscriptions (commands) are renewed on the new session. amqtt may handle the renewed
        # SUBSCRIBE after it forwards the "online" status, so the command is sent until it lands.
        def delivered() -> bool:
            if not commands:
                subscriber.client.publish(cmd_topic, b"hello", qos=1)
            return bool(commands)

        assert wait_for(delivered, WAIT, interval=1.0)
        assert set(commands) == {(cmd_topic, b"hello")}
    finally:
        link.stop()
        gate.close()


def test_connection_cut_mid_stream_resends_from_oldest_unacked(
    broker: Broker, outbox: Outbox, subscriber: Subscriber
) -> None:
    gate = Gate(broker.port)
    batch = events(200)
    enqueue(outbox, batch)
    slow = _SlowOutbox(outbox.path)  # paced, so the cut surely finds messages queued and in flight
    link = make_link(broker, slow, url=gate.url())
    link.start()
    try:
        assert wait_for(lambda: len(subscriber.event_ids()) >= 30, WAIT, 0.005)
        gate.cut()  # with messages in flight
        depth_while_down = outbox.depth
        time.sleep(1)
        gate.reopen()
        expected = [e.id for e in batch]
        assert wait_for(lambda: subscriber.has_all(expected), WAIT), f"{len(set(subscriber.event_ids()))} arrived"
        assert wait_for(lambda: outbox.depth == 0, WAIT)
        assert depth_while_down > 0
        assert first_arrivals(subscriber.event_ids()) == expected
        assert link.stats().reconnects >= 1
    finally:
        link.stop()
        slow.close()
        gate.close()


def test_broker_down_for_seconds_loses_nothing(broker: Broker, outbox: Outbox, subscriber: Subscriber) -> None:
    gate = Gate(broker.port)
    link = make_link(broker, outbox, url=gate.url())
    writer = writer_of(link)
    link.start()
    a, b, c = events(30), events(30), events(30)
    try:
        for event in a:
            writer.event(event)
        assert wait_for(lambda: subscriber.has_all([e.id for e in a]) and outbox.depth == 0, WAIT)

        gate.cut()  # hold the link back until the subscriber is back (see the module docstring)
        broker.kill()
        for event in b:  # alerts raised while the broker is down
            writer.event(event)
        assert wait_for(lambda: not link.connected, WAIT)
        assert outbox.depth == len(b)
        assert "cannot reach broker" in (link.last_error or "") or "lost the connection" in (link.last_error or "")

        subacks = subscriber.subacks
        broker.start()  # same port; Mosquitto with its persistence file
        assert wait_for(lambda: subscriber.subacks > subacks, WAIT), "subscriber did not come back"
        gate.reopen()
        for event in c:
            writer.event(event)
        expected = [e.id for e in a + b + c]
        assert wait_for(lambda: subscriber.has_all(expected), WAIT), f"{len(set(subscriber.event_ids()))} arrived"
        assert wait_for(lambda: outbox.depth == 0, WAIT)
        assert first_arrivals(subscriber.event_ids()) == expected
        assert link.stats().reconnects >= 1
    finally:
        link.stop()
        gate.close()


def link_process(broker: Broker, box: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "tests.test_link", "run-link", broker.url(), broker.protocol, str(box), *extra]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == "connected", f"link process: {line!r} {proc.stderr.read() if proc.stderr else ''}"
    return proc


def test_agent_killed_9_with_a_full_outbox_delivers_everything_after_restart(
    broker: Broker, tmp_path: Path, subscriber: Subscriber
) -> None:
    path = tmp_path / "agent" / "outbox.db"
    box = Outbox(path)
    batch = events(300)
    enqueue(box, batch)
    expected = [e.id for e in batch]
    # --slow: small batches, so the kill surely finds messages queued and in flight.
    proc = link_process(broker, path, "--slow")
    try:
        assert wait_for(lambda: len(subscriber.event_ids()) >= 40, WAIT, 0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert box.depth > 0, "the kill should leave messages behind"
    # The broker noticed the dead socket: the last will says offline, not clean.
    assert wait_for(lambda: any(s.state == "offline" and not s.clean for s, _ in subscriber.statuses()), WAIT)

    proc = link_process(broker, path)
    try:
        assert wait_for(lambda: subscriber.has_all(expected), WAIT), f"{len(set(subscriber.event_ids()))} arrived"
        assert wait_for(lambda: box.depth == 0, WAIT)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    ids = subscriber.event_ids()
    assert len(set(ids)) == len(expected) and first_arrivals(ids) == expected
    status, _ = retained_status(broker)
    assert status.state == "offline" and status.clean  # SIGTERM: a clean stop says goodbye
    box.close()


@pytest.mark.parametrize("protocol", ["v5", "v311"])
def test_wrong_credentials_are_reported_and_messages_stay_queued(
    tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Run as root, Mosquitto drops to the `mosquitto` user before reading the password file, and
    # pytest's tmp_path is private to root: put the file where that user can read it.
    pwdir = Path(tempfile.mkdtemp(prefix="diaolou-passwd-"))
    pwdir.chmod(0o755)
    passwords = pwdir / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "box1", "right-pass"], check=True)
    passwords.chmod(0o644)
    broker = Broker("mosquitto", tmp_path / "broker", password_file=passwords).start()
    box = Outbox(tmp_path / "outbox.db")
    batch = events(5)
    enqueue(box, batch)
    config = MqttConfig(url=broker.url("box1", "wrong-pass"), protocol=protocol)
    link = MqttLink(config, SITE, DEVICE, box, reconnect_max_seconds=1)
    caplog.set_level(logging.INFO, logger="edge_agent.comms.link")
    try:
        link.start()
        assert wait_for(lambda: link.stats().attempts >= 3, WAIT)  # it keeps trying, with backoff
        assert not link.connected and box.depth == 5
        problem = link.last_error or ""
        assert "refused the connection" in problem and "user name or password" in problem, problem
        assert "wrong-pass" not in caplog.text  # never log the password
        refusals = [r for r in caplog.records if "refused the connection" in r.getMessage()]
        assert len(refusals) == 1  # logged once, not on every retry
    finally:
        link.stop()
    # The same queue, the right password: everything goes.
    good = MqttLink(MqttConfig(url=broker.url("box1", "right-pass"), protocol=protocol), SITE, DEVICE, box)
    good.start()
    try:
        assert wait_for(lambda: box.depth == 0, WAIT)
        assert good.stats().acked == 5
    finally:
        good.stop()
        box.close()
        broker.stop()
        shutil.rmtree(pwdir, ignore_errors=True)


def test_a_refused_message_is_retried_on_the_live_connection_once_the_acl_allows_it(tmp_path: Path) -> None:
    """Mosquitto 2 answers a v5 publish its ACL denies with PUBACK 0x87 (not authorised). The row
    stays queued and is published again with backoff on the same connection, so fixing the ACL
    and reloading Mosquitto (SIGHUP) delivers it without a reconnect."""
    # World-readable files: run as root, Mosquitto may read them as the `mosquitto` user.
    etc = Path(tempfile.mkdtemp(prefix="diaolou-acl-"))
    etc.chmod(0o755)
    passwords, acl = etc / "passwd", etc / "acl"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "box1", "box-pass"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "sub", "sub-pass"], check=True)
    prefix = f"diaolou/v1/{SITE}/{DEVICE}"
    rules = ["user sub", "topic read diaolou/v1/#", "user box1", f"topic write {prefix}/status"]
    acl.write_text("\n".join(rules) + "\n")  # no event topic for the box yet
    for path in (passwords, acl):
        path.chmod(0o644)
    broker = Broker("mosquitto", tmp_path / "broker", password_file=passwords, acl_file=acl)
    subscriber = Subscriber(broker, login=("sub", "sub-pass"))
    box = Outbox(tmp_path / "outbox.db")
    link: MqttLink | None = None
    try:
        broker.start()
        subscriber.start()
        batch = events(3)
        enqueue(box, batch)
        config = MqttConfig(url=broker.url("box1", "box-pass"), protocol="v5")
        link = MqttLink(config, SITE, DEVICE, box, refused_retry_min_seconds=0.05, refused_retry_max_seconds=0.2)
        link.start()
        # Refused, and refused again when retried: 3 messages, at least two rounds.
        assert wait_for(lambda: link.stats().refused >= 6, WAIT, 0.02)
        assert box.depth == 3 and subscriber.event_ids() == []
        acl.write_text("\n".join([*rules, f"topic write {prefix}/event"]) + "\n")
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: box.depth == 0, WAIT, 0.02)
        assert wait_for(lambda: subscriber.has_all([e.id for e in batch]), WAIT, 0.02)
        assert first_arrivals(subscriber.event_ids()) == [e.id for e in batch]
        stats = link.stats()
        assert stats.connects == 1 and stats.acked == 3  # on the first connection, no reconnect
    finally:
        if link is not None:
            link.stop()
        subscriber.stop()
        box.close()
        broker.stop()
        shutil.rmtree(etc, ignore_errors=True)


def test_heartbeats_say_what_the_ring_buffer_still_keeps_per_camera(tmp_path: Path) -> None:
    """From the real index: the oldest kept segment's start (older ones were aged out) and the
    newest one's end; a camera with nothing recorded says nothing."""
    from edge_agent.record.index import SegmentIndex
    from edge_agent.record.segment import Segment

    T = 1796342400.0  # 2026-12-04
    index = SegmentIndex(tmp_path)
    for start in (T + 0, T + 10, T + 20):
        index.add(Segment("cam1", start, start + 10, f"cam1/{start - T:g}.mp4", 1, "h264", 640, 360, 1))
    index.add(Segment("cam3", T + 90, T + 94.5, "cam3/90.mp4", 1, "h264", 640, 360, 1))
    index.flush()
    index.remove(["cam1/0.mp4"])  # aged out
    cameras = {c: {"source": f"rtsp://127.0.0.1/{c}"} for c in ("cam1", "cam2")}
    config = AgentConfig.model_validate(
        {"site": SITE, "device": DEVICE, "storage": {"root": str(tmp_path)}, "cameras": cameras}
    )
    statuses = [CameraStatus(camera=c, source=f"rtsp://127.0.0.1/{c}", state="online") for c in ("cam1", "cam2")]
    beat = HeartbeatBuilder(config).build(statuses, index.spans(["cam1", "cam2", "cam3"]))
    kept = {c.camera: (c.recorded_from, c.last_segment_end) for c in beat.cameras}
    assert kept == {"cam1": (T + 10, T + 30), "cam2": (None, None)}
    assert index.spans(["cam3"]) == {"cam3": (T + 90, T + 94.5)}
    index.close()


def test_heartbeats_carry_cameras_disk_and_outbox(broker: Broker, tmp_path: Path, subscriber: Subscriber) -> None:
    config = agent_config(broker, tmp_path, cameras={"cam1": {"source": "rtsp://127.0.0.1/cam1"}})
    box = Outbox.at(config.storage.root)
    enqueue(box, events(2))
    builder = HeartbeatBuilder(config, box)
    statuses = [
        CameraStatus(camera="cam1", source="rtsp://127.0.0.1/cam1", state="online", fps=12.5, dropped_packets=3)
    ]
    beat = builder.build(statuses, {"cam1": (1699395200.0, 1700000000.0)})
    assert beat.outbox_depth == 2 and beat.disk_total_bytes and beat.disk_free_bytes is not None
    assert beat.memory_mb and beat.memory_mb > 1 and beat.cpu_percent is not None
    cam = beat.cameras[0]
    assert (cam.camera, cam.state, cam.fps, cam.dropped_packets, cam.recording) == ("cam1", "online", 12.5, 3, True)
    assert (cam.recorded_from, cam.last_segment_end) == (1699395200.0, 1700000000.0)

    box.ack_many(m.seq for m in box.pending(10))  # only heartbeats on the wire in this test
    link = MqttLink.for_agent(config, box, heartbeat=lambda: builder.build(statuses))
    link.start()
    try:
        heartbeat_topic = topic(SITE, DEVICE, "heartbeat")

        def beats() -> list[Heartbeat]:
            with subscriber.lock:
                return [decode(Heartbeat, p) for t, p, _ in subscriber.messages if t == heartbeat_topic]

        assert wait_for(lambda: len(beats()) >= 2, WAIT)  # heartbeat_seconds=1: periodic
        assert beats()[-1].cameras[0].camera == "cam1" and link.stats().heartbeats >= 2
    finally:
        link.stop()
        box.close()
    assert not link.publish_heartbeat(builder.build())  # offline: dropped, not queued
    assert Outbox.at(config.storage.root).depth == 0


def agent_config(broker: Broker, tmp_path: Path, url: str | None = None, **extra: Any) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "site": SITE,
            "device": DEVICE,
            "storage": {"root": str(tmp_path / "storage")},
            "mqtt": {"url": url or broker.url(), "protocol": broker.protocol, "heartbeat_seconds": 1},
            **extra,
        }
    )


def test_alarm_without_an_agent_delivers_by_itself(broker: Broker, tmp_path: Path, subscriber: Subscriber) -> None:
    config = agent_config(broker, tmp_path)
    result = send_test_alarms(config, count=3, wait_seconds=WAIT)
    assert result.via == "direct" and result.ok, result.message
    assert (result.sent, result.acked, result.queued) == (3, 3, 0)
    assert "acknowledged" in result.message and "not running" in result.message
    assert wait_for(lambda: subscriber.has_all(result.event_ids), WAIT)
    got = subscriber.events()
    assert [e.id for e in got] == result.event_ids
    assert all(e.test and e.kind == "test" and e.phase == "instant" for e in got)
    assert Outbox.at(config.storage.root).depth == 0
    assert not AgentLock.is_held(config.storage.root)  # released
    status, _ = retained_status(broker)
    assert status.state == "offline" and status.clean  # it said goodbye under the agent's client id


def test_alarm_with_a_running_agent_goes_through_its_session(
    broker: Broker, tmp_path: Path, subscriber: Subscriber
) -> None:
    config = agent_config(broker, tmp_path)
    lock = AgentLock(config.storage.root)
    lock.acquire()  # what `diaolou-agent run` does
    box = Outbox.at(config.storage.root)
    link = MqttLink.for_agent(config, box)
    link.start()
    try:
        assert link.wait_connected(WAIT)
        result = send_test_alarms(config, count=4, wait_seconds=WAIT)
        assert result.via == "agent" and result.ok, result.message
        assert (result.sent, result.acked, result.queued) == (4, 4, 0)
        assert wait_for(lambda: subscriber.has_all(result.event_ids), WAIT)
        # Never a second session under the agent's client id (it would have kicked the agent off).
        stats = link.stats()
        assert stats.connects == 1 and stats.acked == 4 and stats.connected
    finally:
        link.stop()
        box.close()
        lock.release()


def test_alarm_with_the_broker_unreachable_stays_queued_for_the_agent(mosquitto: Broker, tmp_path: Path) -> None:
    dead = f"mqtt://127.0.0.1:{free_port()}"
    result = send_test_alarms(agent_config(mosquitto, tmp_path, url=dead), count=3, wait_seconds=2)
    assert result.via == "direct" and not result.ok
    assert (result.sent, result.acked, result.queued) == (3, 0, 3)
    assert "cannot reach broker" in result.message and "stay queued" in result.message, result.message
    config = agent_config(mosquitto, tmp_path)
    assert Outbox.at(config.storage.root).depth == 3

    # Later, with the broker reachable: the earlier ones go first, then the new ones.
    sub = Subscriber(mosquitto).start()
    try:
        again = send_test_alarms(config, count=2, wait_seconds=WAIT)
        assert again.ok and again.via == "direct"
        expected = result.event_ids + again.event_ids
        assert wait_for(lambda: sub.has_all(expected), WAIT)
        assert sub.event_ids() == expected
    finally:
        sub.stop()


# --- the agent-like process for the kill -9 tests ---------------------------------------------
class _SlowOutbox(Outbox):
    """Hands out a few rows at a time, so a kill finds work left (test pacing, not a product knob)."""

    def pending(self, limit: int = 100, after: int = 0) -> list[OutboxMessage]:
        time.sleep(0.05)
        return super().pending(min(limit, 3), after)


def _run_link(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("protocol")
    parser.add_argument("outbox", type=Path)
    parser.add_argument("--slow", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    box = (_SlowOutbox if args.slow else Outbox)(args.outbox)
    link = MqttLink(MqttConfig(url=args.url, protocol=args.protocol), SITE, DEVICE, box, window=5 if args.slow else 20)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    link.start()
    if not link.wait_connected(WAIT):
        print("not connected", flush=True)
        return 1
    print("connected", flush=True)
    stop.wait()
    link.stop()
    box.close()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["run-link"]:
        sys.exit(_run_link(sys.argv[2:]))
    sys.exit(f"usage: {sys.argv[0]} run-link URL PROTOCOL OUTBOX [--slow]")
