"""Alerts to phones: WeCom and DingTalk robots played by a real HTTP server on loopback, a real
hub.db, the notifier's real threads, and the API through FastAPI's TestClient.

What a shop owner would check: the message arrives in the robot's format (DingTalk's signature
verified by the receiver, independently of the hub's code), says camera, local time, zone and
the link; nothing arrives while disarmed; a robot that is down or refuses comes back to every
alert exactly once; a hub restart loses and repeats nothing; nobody reaches another's channel.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from contract import Event, Status, encode, topic
from edge_agent.events.ids import new_event_id
from hub.api.app import create_app
from hub.config import HubConfig
from hub.db import HubDB
from hub.migrations import migrations
from hub.models import Principal
from hub.notify import channels, schedule
from hub.notify.models import ArmingSegment, ArmingSet, ChannelCreate, ChannelUpdate
from hub.notify.notifier import Notifier, NotifyPolicy, NotifySettings
from hub.records import Record
from hub.server import HubServer
from hub.services import accounts, audit
from hub.store import connect, open_store
from tests.conftest import REPO, free_port, wait_for
from tests.support.brokers import Broker
from tests.test_hub import HubProcess, Publisher, write_config

WAIT = 30.0  # bound on waiting for real threads and servers; not a performance limit
PASSWORD = "correct horse battery"
PUBLIC = "https://hub.example.cn"
WECOM_KEY = "693axxx6-7aoc-4bc4-97a0-0ec2sifa5aaa"
DING_TOKEN = "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6"
DING_SECRET = "SECd4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6"
# 2026-12-01 21:05:09 in Lanxi (Asia/Shanghai, UTC+8).
NIGHT = datetime(2026, 12, 1, 13, 5, 9, tzinfo=UTC).timestamp()
HOUR = 3600.0
FAST = NotifyPolicy(
    poll_seconds=0.05, backoff_first_seconds=0.05, backoff_max_seconds=0.2, give_up_seconds=10 * 365 * 86400.0
)
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
ALERT_LINK = re.compile(r"/alerts/([0-9A-Z]{26})")


# --- a robot on loopback -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    status: int
    errcode: int | None
    signature_ok: bool | None  # DingTalk: the receiver's own check of timestamp and sign

    @property
    def taken(self) -> bool:
        return self.status == 200 and self.errcode == 0

    @property
    def event_id(self) -> str | None:
        match = ALERT_LINK.search(self.body.get("text", {}).get("content", ""))
        return match.group(1) if match else None


class Robot:
    """A WeCom / DingTalk robot: answers {"errcode": 0} unless told to fail first; with a secret,
    it checks DingTalk's signature as DingTalk documents it."""

    def __init__(self, port: int | None = None, secret: str | None = None) -> None:
        self.port = port or free_port()
        self.secret = secret
        self.script: list[tuple[int, int | None]] = []  # (HTTP status, errcode) answers before the OK ones
        self.received: list[Received] = []
        self.changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Robot:
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                with robot.changed:
                    status, errcode = robot.script.pop(0) if robot.script else (200, 0)
                    signature_ok = robot.check_signature(query) if robot.secret else None
                    if signature_ok is False:
                        status, errcode = 200, 310000
                    robot.received.append(Received(parts.path, query, body, status, errcode, signature_ok))
                    robot.changed.notify_all()
                answer = json.dumps({"errcode": errcode, "errmsg": "ok" if errcode == 0 else "refused"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def check_signature(self, query: dict[str, str]) -> bool:
        assert self.secret is not None
        timestamp = query.get("timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) / 1000 - time.time()) > HOUR:
            return False
        digest = hmac.new(self.secret.encode(), f"{timestamp}\n{self.secret}".encode(), hashlib.sha256).digest()
        return hmac.compare_digest(query.get("sign", ""), base64.b64encode(digest).decode())

    def wait(self, predicate: Callable[[list[Received]], bool]) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.received), WAIT)

    def delivered(self) -> list[str]:
        """Event ids of the messages the robot took, in arrival order."""
        with self.changed:
            return [r.event_id for r in self.received if r.taken and r.event_id]


@pytest.fixture
def robot() -> Iterator[Robot]:
    server = Robot().start()
    yield server
    server.stop()


# --- a hub with people and cameras ---------------------------------------------------------------------
def make_hub_data(data_dir: Path) -> None:
    config = HubConfig.model_validate({"data_dir": str(data_dir)})
    db = HubDB(config.db_path)
    now = time.time()
    db.write(
        [
            Record("status", "lanxi", "shop-1", now, message=Status(state="online", time=now, cameras=["door"])),
            Record("status", "lanxi", "shop-2", now, message=Status(state="online", time=now, cameras=["door"])),
        ]
    )
    db.close()
    conn = connect(config.db_path)
    accounts.add_user(conn, audit.CLI, "admin", PASSWORD, "admin")
    accounts.add_user(conn, audit.CLI, "owner1", PASSWORD, "shop_owner", cameras=["lanxi.shop-1.door"])
    accounts.add_user(conn, audit.CLI, "owner2", PASSWORD, "shop_owner", cameras=["lanxi.shop-2.door"])
    accounts.add_user(conn, audit.CLI, "police1", PASSWORD, "police", sites=["lanxi"], locale="en")
    conn.close()


@pytest.fixture(scope="module")
def hub_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made once: Argon2 is slow on purpose."""
    data_dir = tmp_path_factory.mktemp("notify-template") / "hub"
    make_hub_data(data_dir)
    return data_dir


@pytest.fixture
def config(hub_template: Path, tmp_path: Path) -> HubConfig:
    shutil.copytree(hub_template, tmp_path / "hub")
    web = {"notification_hosts": ["127.0.0.1"], "public_url": PUBLIC + "/"}
    return HubConfig.model_validate({"data_dir": str(tmp_path / "hub"), "web": web})


@pytest.fixture
def notifier(config: HubConfig) -> Iterator[Notifier]:
    running = Notifier(config.db_path, NotifySettings.of(config.web), FAST)
    running.start()
    yield running
    running.stop()


def user_id(config: HubConfig, username: str) -> int:
    conn = connect(config.db_path)
    try:
        return accounts.get_user(conn, username).id
    finally:
        conn.close()


def add_channel(config: HubConfig, username: str, kind: str, url: str, secret: str | None = None) -> int:
    conn = connect(config.db_path)
    try:
        body = ChannelCreate.model_validate({"name": f"{username} {kind}", "kind": kind, "url": url, "secret": secret})
        return channels.add_channel(conn, audit.CLI, user_id(config, username), body, {"127.0.0.1"})
    finally:
        conn.close()


def alert(
    config: HubConfig,
    t: float,
    device: str = "shop-1",
    phase: str = "new",
    test: bool = False,
    eid: str | None = None,
    seq: int = 0,
) -> str:
    """Store one person event message as ingest would; returns its id."""
    ev = Event(
        id=eid or new_event_id(),
        kind="person",
        phase=phase,  # type: ignore[arg-type]
        seq=seq,
        camera="door",
        time=t,
        test=test,
        detail={"zone": "front", "max_score": 0.91},
    )
    db = HubDB(config.db_path)
    try:
        db.write([Record("event", "lanxi", device, time.time(), message=ev)])
    finally:
        db.close()
    return ev.id


def channel_row(config: HubConfig, channel_id: int) -> dict[str, Any]:
    conn = connect(config.db_path)
    try:
        return dict(conn.execute("SELECT * FROM notify_channels WHERE id = ?", (channel_id,)).fetchone())
    finally:
        conn.close()


# --- delivery ------------------------------------------------------------------------------------------
def test_wecom_message_says_camera_local_time_zone_and_link(
    config: HubConfig, robot: Robot, notifier: Notifier
) -> None:
    add_channel(config, "owner1", "wecom", robot.url(f"/cgi-bin/webhook/send?key={WECOM_KEY}"))
    add_channel(config, "police1", "wecom", robot.url("/police?key=abc"))  # police see their site's cameras
    eid = alert(config, NIGHT)
    assert robot.wait(lambda got: len(got) >= 2)
    by_path = {r.path: r for r in robot.received}
    owner = by_path["/cgi-bin/webhook/send"]
    assert owner.query == {"key": WECOM_KEY}
    assert owner.body == {"msgtype": "text", "text": {"content": owner.body["text"]["content"]}}
    assert owner.body["text"]["content"] == (
        "【碉楼】有人出现\n"
        "摄像头：lanxi.shop-1.door\n"
        "时间：2026-12-01 21:05:09 (Asia/Shanghai)\n"
        "区域：front\n"
        f"查看：{PUBLIC}/alerts/{eid}"
    )
    police = by_path["/police"].body["text"]["content"]  # police1 reads English
    assert "Camera: lanxi.shop-1.door" in police and "Time: 2026-12-01 21:05:09 (Asia/Shanghai)" in police
    assert f"Open: {PUBLIC}/alerts/{eid}" in police and "Zone: front" in police


def test_dingtalk_message_is_signed(config: HubConfig, notifier: Notifier) -> None:
    robot = Robot(secret=DING_SECRET).start()
    try:
        channel = add_channel(
            config, "owner1", "dingtalk", robot.url(f"/robot/send?access_token={DING_TOKEN}"), DING_SECRET
        )
        eid = alert(config, NIGHT)
        assert robot.wait(lambda got: len(got) >= 1)
        got = robot.received[0]
        assert got.path == "/robot/send" and got.query["access_token"] == DING_TOKEN
        assert got.signature_ok is True and got.taken
        assert got.body["msgtype"] == "text" and got.event_id == eid
        assert wait_for(lambda: channel_row(config, channel)["last_sent"] is not None, WAIT)
    finally:
        robot.stop()


def test_only_alerts_in_armed_times_of_visible_cameras_are_sent(
    config: HubConfig, robot: Robot, notifier: Notifier
) -> None:
    add_channel(config, "owner1", "wecom", robot.url("/send?key=k"))
    conn = connect(config.db_path)
    segments = [ArmingSegment(start="20:00", end="07:00")]
    channels.set_arming(
        conn, audit.CLI, user_id(config, "owner1"), "lanxi.shop-1.door", ArmingSet(segments=segments), "Asia/Shanghai"
    )
    conn.close()
    noon = alert(config, NIGHT - 9 * HOUR)  # 12:05 local: the shop is open
    armed = alert(config, NIGHT)  # 21:05
    alert(config, NIGHT, device="shop-2")  # owner2's camera
    alert(config, NIGHT, test=True)  # a test alarm alerts no one
    alert(config, NIGHT, phase="update", eid=armed, seq=1)  # the same event again: one message per event
    dawn = alert(config, NIGHT + 9.5 * HOUR)  # 06:35 the next morning, inside 20:00-07:00
    assert robot.wait(lambda got: len(got) >= 2)  # in arrival order: anything queued before dawn came first
    assert robot.delivered() == [armed, dawn]
    assert noon not in robot.delivered()


def test_robot_down_then_up_gets_each_alert_once(config: HubConfig, robot: Robot, notifier: Notifier) -> None:
    """500s, then HTTP 200 with an errcode (rate limit), then it takes them: each alert once."""
    robot.script = [(500, None)] * 3 + [(200, 45009)] * 2
    channel = add_channel(config, "owner1", "wecom", robot.url("/send?key=k"))
    ids = [alert(config, NIGHT + n) for n in range(4)]
    assert robot.wait(lambda got: sum(r.taken for r in got) >= 4)
    marker = alert(config, NIGHT + 10)
    assert robot.wait(lambda got: marker in [r.event_id for r in got if r.taken])
    assert robot.delivered() == [*ids, marker]
    assert [r.status for r in robot.received[:5]] == [500, 500, 500, 200, 200]
    assert [r.event_id for r in robot.received[:6]] == [ids[0]] * 6  # oldest first: the channel keeps its order
    row = channel_row(config, channel)
    assert row["failures"] == 0 and row["last_error"] is None and row["last_sent"] is not None


def test_robot_port_closed_then_open(config: HubConfig, notifier: Notifier) -> None:
    robot = Robot()  # not listening yet: connection refused
    channel = add_channel(config, "owner1", "wecom", robot.url("/send?key=k"))
    ids = [alert(config, NIGHT + n) for n in range(3)]
    assert wait_for(lambda: channel_row(config, channel)["failures"] >= 2, WAIT)
    assert "cannot reach" in channel_row(config, channel)["last_error"]
    robot.start()
    try:
        assert robot.wait(lambda got: sum(r.taken for r in got) >= 3)
        marker = alert(config, NIGHT + 10)
        assert robot.wait(lambda got: marker in [r.event_id for r in got if r.taken])
        assert robot.delivered() == [*ids, marker]
    finally:
        robot.stop()


def cursor(config: HubConfig) -> int:
    conn = connect(config.db_path)
    try:
        return int(conn.execute("SELECT position FROM notify_cursor WHERE name = 'events'").fetchone()[0])
    finally:
        conn.close()


def event_rowid(config: HubConfig, event_id: str) -> int:
    conn = connect(config.db_path)
    try:
        return int(conn.execute("SELECT rowid FROM events WHERE id = ? AND phase = 'new'", (event_id,)).fetchone()[0])
    finally:
        conn.close()


def test_a_paused_channel_gets_nothing_and_a_resumed_one_what_follows(
    config: HubConfig, robot: Robot, notifier: Notifier
) -> None:
    channel = add_channel(config, "owner1", "wecom", robot.url("/send?key=k"))
    conn = connect(config.db_path)
    principal = Principal(user_id=user_id(config, "owner1"), username="owner1", role="shop_owner", locale="zh")
    channels.update_channel(conn, audit.CLI, principal, channel, ChannelUpdate(enabled=False), {"127.0.0.1"})
    while_paused = alert(config, NIGHT)
    assert wait_for(lambda: cursor(config) >= event_rowid(config, while_paused), WAIT)  # the notifier read it
    channels.update_channel(conn, audit.CLI, principal, channel, ChannelUpdate(enabled=True), {"127.0.0.1"})
    conn.close()
    resumed = alert(config, NIGHT + 1)
    assert robot.wait(lambda got: len(got) >= 1)
    assert robot.delivered() == [resumed] and while_paused not in outbox_states(config)


def test_hub_restart_loses_nothing_and_repeats_nothing(config: HubConfig, robot: Robot) -> None:
    add_channel(config, "owner1", "wecom", robot.url("/send?key=k"))
    first = Notifier(config.db_path, NotifySettings.of(config.web), FAST)
    first.start()
    sent = [alert(config, NIGHT + n) for n in range(2)]
    assert robot.wait(lambda got: sum(r.taken for r in got) >= 2)
    robot.script = [(503, None)] * 1000  # the robot goes down
    queued = alert(config, NIGHT + 2)
    assert robot.wait(lambda got: any(r.event_id == queued for r in got))  # tried, failed, still queued
    first.stop()
    while_down = alert(config, NIGHT + 3)  # arrives while the notifier is stopped
    with robot.changed:
        robot.script = []  # the robot is back
    second = Notifier(config.db_path, NotifySettings.of(config.web), FAST)
    second.start()
    try:
        marker = alert(config, NIGHT + 4)
        assert robot.wait(lambda got: marker in [r.event_id for r in got if r.taken])
        assert robot.delivered() == [*sent, queued, while_down, marker]
    finally:
        second.stop()


def test_upgrading_a_hub_does_not_send_its_history(tmp_path: Path, robot: Robot) -> None:
    """A hub.db from before notifications (schema 3) with alerts in it: only later alerts are sent."""
    web = {"notification_hosts": ["127.0.0.1"], "public_url": PUBLIC}
    config = HubConfig.model_validate({"data_dir": str(tmp_path / "old-hub"), "web": web})
    config.data_dir.mkdir()
    conn = connect(config.db_path)
    for migration in migrations()[:3]:
        conn.executescript(migration.sql)
    conn.execute("PRAGMA user_version = 3")
    old = [f"01JA2B3C4D5E6F7G8H9J0K{n:04d}" for n in range(3)]
    for eid in old:
        conn.execute(
            "INSERT INTO events (id, phase, seq, site, device, camera, kind, time, test, detail, received) "
            "VALUES (?, 'new', 0, 'lanxi', 'shop-1', 'door', 'person', ?, 0, '{}', ?)",
            (eid, NIGHT, NIGHT),
        )
    conn.close()
    open_store(config.db_path)  # what the upgraded hub does first: the notifications migration runs
    conn = connect(config.db_path)
    accounts.add_user(conn, audit.CLI, "owner1", PASSWORD, "shop_owner", cameras=["lanxi.shop-1.door"])
    conn.close()
    add_channel(config, "owner1", "wecom", robot.url("/send?key=k"))  # before the notifier first looks
    running = Notifier(config.db_path, NotifySettings.of(config.web), FAST)
    running.start()
    try:
        new = alert(config, NIGHT + 10)
        assert robot.wait(lambda got: len(got) >= 1)
        assert robot.delivered() == [new] and not set(old) & set(outbox_states(config))
    finally:
        running.stop()


def outbox_states(config: HubConfig) -> dict[str, str]:
    conn = connect(config.db_path)
    try:
        return {r["event_id"]: r["state"] for r in conn.execute("SELECT event_id, state FROM notify_outbox")}
    finally:
        conn.close()


def test_an_alert_too_old_to_help_is_given_up(config: HubConfig, robot: Robot) -> None:
    """Undelivered for a day (the notifier's clock is moved on), or a day old on arrival: not sent."""
    skew = [0.0]
    policy = NotifyPolicy(poll_seconds=0.05, backoff_first_seconds=0.05, backoff_max_seconds=0.2)
    running = Notifier(config.db_path, NotifySettings.of(config.web), policy, clock=lambda: time.time() + skew[0])
    robot.script = [(500, None)] * 1000
    add_channel(config, "owner1", "wecom", robot.url("/send?key=k"))
    running.start()
    try:
        stuck = alert(config, time.time())
        assert robot.wait(lambda got: any(r.event_id == stuck for r in got))
        skew[0] = policy.give_up_seconds + 60
        assert wait_for(lambda: outbox_states(config).get(stuck) == "expired", WAIT)
        with robot.changed:
            robot.script = []
        late = alert(config, time.time() - 60)  # a day and a minute old by the notifier's clock
        marker = alert(config, time.time() + skew[0])
        assert robot.wait(lambda got: marker in [r.event_id for r in got if r.taken])
        assert robot.delivered() == [marker]
        assert late not in outbox_states(config)
    finally:
        running.stop()


def test_hub_killed_with_kill_9_loses_and_repeats_no_notification(
    mosquitto: Broker, config: HubConfig, robot: Robot, tmp_path: Path
) -> None:
    """`diaolou-hub run` killed -9 while the robot is down, an alert arriving while the hub is
    dead (Mosquitto holds it): after the restart every alert reaches the phone once."""
    raw = json.loads(config.model_dump_json())
    raw.update(listen=f"127.0.0.1:{free_port()}", mqtt={"url": mosquitto.url(), "protocol": mosquitto.protocol})
    hub_config = HubConfig.model_validate(raw)
    add_channel(config, "owner1", "wecom", robot.url("/send?key=k"))
    hub = HubProcess(write_config(tmp_path, hub_config), tmp_path / "hub.log").start()
    agent = Publisher(mosquitto.port, mosquitto.protocol, "lanxi-shop-1")

    def publish() -> str:
        ev = Event(id=new_event_id(), kind="person", phase="new", camera="door", time=time.time())
        agent.publish(topic("lanxi", "shop-1", "event"), encode(ev))
        return ev.id

    try:
        delivered = publish()
        assert robot.wait(lambda got: delivered in [r.event_id for r in got if r.taken])
        with robot.changed:
            robot.script = [(500, None)] * 1000  # the robot goes down
        queued = publish()
        assert robot.wait(lambda got: queued in [r.event_id for r in got])
        hub.kill()
        while_dead = publish()
        with robot.changed:
            robot.script = []  # the robot is back
        hub.start()
        marker = publish()
        assert robot.wait(lambda got: marker in [r.event_id for r in got if r.taken])
        assert robot.delivered() == [delivered, queued, while_dead, marker]
    finally:
        agent.close()
        if hub.proc is not None and hub.proc.poll() is None:
            assert hub.terminate() == 0


@dataclass
class RunningHub:
    server: HubServer
    url: str
    broker_port: int


@pytest.fixture
def running_hub(config: HubConfig) -> Iterator[RunningHub]:
    """HubServer as `diaolou-hub run` assembles it: embedded broker, ingest, notifier, web."""
    broker_port, web_port = free_port(), free_port()
    raw = json.loads(config.model_dump_json())
    raw.update(
        listen=f"127.0.0.1:{web_port}",
        mqtt={"url": f"mqtt://127.0.0.1:{broker_port}", "protocol": "v311"},
        embedded_broker={"enabled": True, "port": broker_port},
    )
    server = HubServer(HubConfig.model_validate(raw))
    server.start()
    try:
        assert server.ingest is not None and server.ingest.wait_subscribed(WAIT)
        yield RunningHub(server, f"http://127.0.0.1:{web_port}", broker_port)
    finally:
        server.stop()


def test_hub_server_delivers_an_alert_that_came_over_mqtt(
    config: HubConfig, robot: Robot, running_hub: RunningHub
) -> None:
    """The whole path: an agent publishes, ingest stores, the notifier HubServer runs posts."""
    add_channel(config, "owner1", "wecom", robot.url("/send?key=k"))
    agent = Publisher(running_hub.broker_port, "v311", "lanxi-shop-1")
    ev = Event(id=new_event_id(), kind="person", phase="new", camera="door", time=time.time(), detail={"zone": "yard"})
    agent.publish(topic("lanxi", "shop-1", "event"), encode(ev))
    agent.close()
    assert robot.wait(lambda got: len(got) >= 1)
    assert robot.delivered() == [ev.id] and "区域：yard" in robot.received[0].body["text"]["content"]


# --- the API -------------------------------------------------------------------------------------------
@pytest.fixture
def client(config: HubConfig) -> Iterator[TestClient]:
    with TestClient(create_app(config)) as test_client:
        yield test_client


def sign_in(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


CHANNELS = "/api/v1/notifications/channels"
ARMING = "/api/v1/notifications/arming"


def test_secrets_are_masked_after_creation(config: HubConfig, client: TestClient, robot: Robot) -> None:
    owner = sign_in(client, "owner1")
    wecom = {"name": "店里的群", "kind": "wecom", "url": robot.url(f"/cgi-bin/webhook/send?key={WECOM_KEY}")}
    created = client.post(CHANNELS, json=wecom, headers=owner)
    assert created.status_code == 201, created.text
    assert created.json()["url"] == robot.url("/cgi-bin/webhook/send?key=693a****")
    ding = {"name": "家人", "kind": "dingtalk", "url": robot.url(f"/robot/send?access_token={DING_TOKEN}")}
    made = client.post(CHANNELS, json={**ding, "secret": DING_SECRET}, headers=owner).json()
    assert made["secret_set"] is True
    listed = client.get(CHANNELS, headers=owner)
    assert [c["name"] for c in listed.json()["items"]] == ["店里的群", "家人"]
    export = client.get("/api/v1/audit/export.csv", headers=sign_in(client, "admin")).text
    for text in (
        created.text,
        made and json.dumps(made),
        listed.text,
        client.get(f"{CHANNELS}/{made['id']}", headers=owner).text,
        export,
    ):
        assert WECOM_KEY not in text and DING_TOKEN not in text and DING_SECRET not in text
    assert "notify.channel.add" in export
    # A new secret is taken, still not shown; "" removes it.
    changed = client.patch(f"{CHANNELS}/{made['id']}", json={"secret": "SECnew"}, headers=owner).json()
    assert changed["secret_set"] is True and "SECnew" not in json.dumps(changed)
    assert client.patch(f"{CHANNELS}/{made['id']}", json={"secret": ""}, headers=owner).json()["secret_set"] is False


def test_a_user_cannot_see_or_change_another_users_channel(client: TestClient, robot: Robot) -> None:
    owner1, owner2, admin = sign_in(client, "owner1"), sign_in(client, "owner2"), sign_in(client, "admin")
    body = {"name": "shop", "kind": "wecom", "url": robot.url("/send?key=k")}
    channel = client.post(CHANNELS, json=body, headers=owner1).json()["id"]
    path = f"{CHANNELS}/{channel}"
    assert client.get(path, headers=owner2).status_code == 404
    assert client.patch(path, json={"enabled": False}, headers=owner2).status_code == 404
    assert client.post(f"{path}/test", headers=owner2).status_code == 404
    assert client.delete(path, headers=owner2).status_code == 404
    assert client.get(f"{CHANNELS}?user=owner1", headers=owner2).status_code == 404
    assert client.post(f"{CHANNELS}?user=owner1", json=body, headers=owner2).status_code == 404
    assert client.get(CHANNELS, headers=owner2).json()["items"] == []
    assert robot.received == []  # owner2's test did not post
    # Admins manage anyone's.
    assert [c["id"] for c in client.get(f"{CHANNELS}?user=owner1", headers=admin).json()["items"]] == [channel]
    assert client.patch(path, json={"enabled": False}, headers=admin).json()["enabled"] is False
    assert client.get(path, headers=owner1).json()["enabled"] is False
    assert client.delete(path, headers=admin).status_code == 204
    assert client.get(path, headers=owner1).status_code == 404


def test_a_webhook_only_goes_to_allowed_hosts(client: TestClient) -> None:
    owner = sign_in(client, "owner1")
    for url in ("http://10.0.0.1/admin", "http://localhost:8080/x", "ftp://127.0.0.1/x", "http://u:p@127.0.0.1/x"):
        response = client.post(CHANNELS, json={"name": "x", "kind": "wecom", "url": url}, headers=owner)
        assert response.status_code == 422, (url, response.text)
    wecom_secret = {"name": "x", "kind": "wecom", "url": "http://127.0.0.1/send?key=k", "secret": "SECx"}
    assert client.post(CHANNELS, json=wecom_secret, headers=owner).status_code == 422


def test_send_test_reports_what_the_robot_said(client: TestClient, robot: Robot) -> None:
    owner = sign_in(client, "owner1")
    channel = client.post(
        CHANNELS, json={"name": "shop", "kind": "wecom", "url": robot.url("/send?key=k")}, headers=owner
    ).json()["id"]
    assert client.post(f"{CHANNELS}/{channel}/test", headers=owner).json() == {"ok": True, "error": None}
    assert "测试消息" in robot.received[0].body["text"]["content"]
    assert f"{PUBLIC}/notifications" in robot.received[0].body["text"]["content"]
    robot.script = [(200, 93000)]
    answer = client.post(f"{CHANNELS}/{channel}/test", headers=owner).json()
    assert answer["ok"] is False and "93000" in answer["error"]


def test_arming_only_on_cameras_the_caller_may_see(client: TestClient) -> None:
    owner = sign_in(client, "owner1")
    night = {"segments": [{"start": "20:00", "end": "07:00"}]}
    assert client.put(f"{ARMING}/lanxi.shop-2.door", json=night, headers=owner).status_code == 404
    assert client.get(f"{ARMING}/lanxi.shop-2.door", headers=owner).status_code == 404
    assert client.delete(f"{ARMING}/lanxi.shop-2.door", headers=owner).status_code == 404
    assert client.put(f"{ARMING}/nope", json=night, headers=owner).status_code == 404
    listed = client.get(ARMING, headers=owner).json()["items"]
    assert [(a["camera"], a["always"]) for a in listed] == [("lanxi.shop-1.door", True)]
    done = client.put(f"{ARMING}/lanxi.shop-1.door", json=night, headers=owner)
    assert done.status_code == 200, done.text
    assert done.json()["time_zone"] == "Asia/Shanghai" and done.json()["always"] is False
    assert done.json()["segments"] == [{"start": "20:00", "end": "07:00", "days": [1, 2, 3, 4, 5, 6, 7]}]
    for bad in ({"segments": [{"start": "25:00", "end": "07:00"}]}, {"time_zone": "Mars/Olympus", "segments": []}):
        assert client.put(f"{ARMING}/lanxi.shop-1.door", json=bad, headers=owner).status_code == 422
    # Arming is the caller's own: the police officer who watches the same camera keeps "always".
    police = client.get(f"{ARMING}/lanxi.shop-1.door", headers=sign_in(client, "police1")).json()
    assert police["always"] is True
    assert client.delete(f"{ARMING}/lanxi.shop-1.door", headers=owner).status_code == 204
    assert client.get(f"{ARMING}/lanxi.shop-1.door", headers=owner).json()["always"] is True


def test_the_page_shows_channels_and_arming_in_both_languages(client: TestClient, robot: Robot) -> None:
    client.post("/api/v1/auth/login", json={"username": "owner1", "password": PASSWORD})
    csrf = client.get("/api/v1/auth/csrf").json()["csrf"]
    body = {"name": "夜间值守", "kind": "wecom", "url": robot.url(f"/send?key={WECOM_KEY}")}
    assert client.post(CHANNELS, json=body, headers={"X-CSRF-Token": csrf}).status_code == 201
    zh = client.get("/notifications").text
    assert "夜间值守" in zh and "企业微信群机器人" in zh and "lanxi.shop-1.door" in zh and "全天推送" in zh
    assert WECOM_KEY not in zh and "<script>" not in zh and "/static/notifications.js" in zh
    en = client.get("/notifications?lang=en").text
    assert "WeCom group robot" in en and "Armed times" in en
    assert 'href="/notifications"' in client.get("/").text


# --- pieces --------------------------------------------------------------------------------------------
def test_schedule_crosses_midnight_names_days_and_reads_the_time_zone() -> None:
    night = [ArmingSegment(start="20:00", end="07:00")]
    shanghai = "Asia/Shanghai"
    assert schedule.armed(night, shanghai, NIGHT)  # 21:05
    assert not schedule.armed(night, shanghai, NIGHT - 9 * HOUR)  # 12:05
    assert schedule.armed(night, shanghai, NIGHT + 9.9 * HOUR)  # 06:59 next day
    assert not schedule.armed(night, shanghai, NIGHT + 10 * HOUR)  # 07:05
    assert not schedule.armed(night, "Europe/London", NIGHT)  # 13:05 in London
    # 2026-12-01 is a Tuesday: a Monday-night segment covers Tuesday morning, not Tuesday night.
    monday = [ArmingSegment(start="20:00", end="07:00", days=[1])]
    assert schedule.armed(monday, shanghai, NIGHT - 15 * HOUR)  # Tue 06:05
    assert not schedule.armed(monday, shanghai, NIGHT)  # Tue 21:05
    lunch_and_night = [ArmingSegment(start="12:00", end="13:30"), ArmingSegment(start="22:00", end="24:00")]
    assert schedule.armed(lunch_and_night, shanghai, NIGHT - 9 * HOUR)
    assert not schedule.armed(lunch_and_night, shanghai, NIGHT)
    assert schedule.armed(lunch_and_night, shanghai, NIGHT + 2.9 * HOUR)  # 23:59
    assert schedule.armed([ArmingSegment(start="00:00", end="00:00")], shanghai, NIGHT)  # the whole day
    assert not schedule.armed([], shanghai, NIGHT)


def test_backoff_doubles_and_is_capped() -> None:
    policy = NotifyPolicy(backoff_first_seconds=1, backoff_max_seconds=300)
    assert [policy.backoff(n) for n in range(1, 11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert policy.backoff(10_000) == 300


# --- the page in a phone's browser ---------------------------------------------------------------------
def test_a_shop_owner_adds_a_robot_tests_it_and_arms_a_camera_on_the_phone(
    page: Page, running_hub: RunningHub, robot: Robot
) -> None:
    """Screenshots in test-artifacts/screenshots/notifications-{zh,en}.png: look at them."""
    url = running_hub.url
    page.goto(f"{url}/login")
    page.fill("input[name=username]", "owner1")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    page.click("nav.tabs a[href='/notifications']")
    expect(page.locator("h1")).to_have_text("通知")
    form = page.locator("#add-channel")
    form.locator("input[name=name]").fill("店里的群")
    form.locator("input[name=url]").fill(robot.url(f"/cgi-bin/webhook/send?key={WECOM_KEY}"))
    form.locator("button[type=submit]").click()
    card = page.locator("[data-channel]").first
    expect(card).to_contain_text("key=693a****")
    card.locator("button[data-action=test]").click()
    expect(card.locator("[data-role=result]")).to_have_text("测试消息已送达")
    assert robot.received[0].taken
    camera = page.locator("li[data-camera='lanxi.shop-1.door']")
    camera.locator("input[name=segments]").fill("25:00-07:00")
    camera.locator("button[type=submit]").click()
    expect(camera.locator("[data-role=error]")).to_be_visible()
    camera.locator("input[name=segments]").fill("20:00-07:00， 12:00-13:30")
    camera.locator("button[type=submit]").click()
    expect(camera.locator("button[data-action=always]")).to_be_visible()  # after the reload: a schedule is set
    expect(camera.locator("input[name=segments]")).to_have_value("20:00-07:00, 12:00-13:30")
    # Weekdays come from the API; the page shows them and keeps them for a segment it leaves alone.
    conn = connect(running_hub.server.config.db_path)
    weekend = ArmingSet(
        segments=[ArmingSegment(start="20:00", end="07:00", days=[6, 7]), ArmingSegment(start="12:00", end="13:30")]
    )
    channels.set_arming(
        conn, audit.CLI, user_id(running_hub.server.config, "owner1"), "lanxi.shop-1.door", weekend, "Asia/Shanghai"
    )
    page.reload()
    expect(camera).to_contain_text("20:00-07:00: 周六 周日")
    camera.locator("input[name=segments]").fill("20:00-07:00, 12:00-14:00")
    camera.locator("button[type=submit]").click()
    # The typed value is there at once; the form's data-days changes only once the page reloaded.
    expect(camera.locator("form.arming")).to_have_attribute("data-days", re.compile("12:00-14:00="))
    saved = channels.get_arming(conn, user_id(running_hub.server.config, "owner1"), "lanxi.shop-1.door", "UTC", NIGHT)
    conn.close()
    assert [(s.start, s.end, s.days) for s in saved.segments] == [
        ("20:00", "07:00", [6, 7]),
        ("12:00", "14:00", [1, 2, 3, 4, 5, 6, 7]),
    ]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "notifications-zh.png"), full_page=True)
    page.goto(f"{url}/notifications?lang=en")
    expect(page.locator("h1")).to_have_text("Notify")
    page.screenshot(path=str(SCREENSHOTS / "notifications-en.png"), full_page=True)
    page.goto(f"{url}/notifications?lang=zh")
    assert WECOM_KEY not in page.content()
