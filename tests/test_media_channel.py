"""The media channel against a real hub web server (uvicorn, WebSockets) and hub.db: a viewer asks,
the command sender publishes the `media` command at once, the box's MediaChannel dials back with
its device token and streams real fMP4 (stream copy of an H.264 file); a second viewer shares the
upstream; the upstream is closed after the last viewer leaves. Refused: another device's token,
an unknown session, a person's token, a camera the viewer may not see."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from contract import Command, Reply, decode
from contract.media import MEDIA_AGENT_PATH, MediaRequest
from edge_agent.capture.sources import StreamSpec
from edge_agent.config.schema import HubLinkConfig
from edge_agent.media.channel import MediaChannel
from edge_agent.media.live import LiveSource
from edge_agent.media.source import MediaSource, MediaUnavailable
from hub.api.app import create_app
from hub.commands_out import CommandSender
from hub.config import HubConfig
from hub.media import fmp4
from hub.media.sessions import MediaHub, StreamKey, Viewer
from hub.services import audit, clips
from hub.store import connect as db_connect
from tests.conftest import free_port, wait_for
from tests.test_web_api import PASSWORD, make_hub_data


@dataclass
class Box:
    """The test's box: the real MediaChannel, with sources that count what they are asked."""

    video: Path
    db_path: Path
    replies: list[Reply] = field(default_factory=list)
    opened: list[LiveSource] = field(default_factory=list)
    channel: MediaChannel | None = None

    def source(self, request: MediaRequest) -> MediaSource:
        if request.camera != "door":
            raise MediaUnavailable(f"camera {request.camera!r} is not on this box")
        live = LiveSource(StreamSpec("file", str(self.video), str(self.video)))
        self.opened.append(live)
        return live

    def reply(self, reply: Reply) -> None:
        """What ingest does with a reply on .../reply: store it for the hub."""
        self.replies.append(reply)
        conn = db_connect(self.db_path)
        with conn:
            conn.execute(
                "INSERT INTO replies (site, device, id, ok, time, error, received) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ("lanxi", "shop-1", reply.id, reply.ok, reply.time, reply.error, reply.time),
            )
        conn.close()

    def publish(self, topic: str, payload: bytes, qos: int) -> bool:
        assert self.channel is not None
        if topic.endswith("/cmd/media") and "/shop-1/" in topic:
            self.channel.handle(decode(Command, payload))
        return True


@dataclass
class Hub:
    config: HubConfig
    base: str
    media: MediaHub
    box: Box
    sender: CommandSender


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, h264_file: Path) -> Iterator[Hub]:
    root = tmp_path_factory.mktemp("media")
    make_hub_data(root / "hub")
    config = HubConfig.model_validate({"data_dir": str(root / "hub")})
    conn = db_connect(config.db_path)
    token = clips.issue_device_token(conn, audit.CLI, "lanxi", "shop-1")
    conn.close()
    (root / "token").write_text(token)
    box = Box(h264_file, config.db_path)
    sender = CommandSender(config.db_path, box.publish, poll_seconds=30.0)  # only a wake gets it going
    app = create_app(config)
    media: MediaHub = app.state.media
    media.linger = 0.5
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_for(lambda: bool(server.started), 20)
    stop = threading.Event()
    hub_link = HubLinkConfig(url=f"http://127.0.0.1:{port}", token_file=root / "token")
    box.channel = MediaChannel(hub_link, {"live": box.source}, box.reply, stop)
    sender.start()
    yield Hub(config, f"127.0.0.1:{port}", media, box, sender)
    stop.set()
    sender.stop()
    server.should_exit = True
    thread.join(10)


def login(hub: Hub, username: str) -> str:
    response = httpx.post(f"http://{hub.base}/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def watch(hub: Hub, username: str, camera: str = "lanxi.shop-1.door") -> ClientConnection:
    headers = {"Authorization": f"Bearer {login(hub, username)}"}
    return connect(f"ws://{hub.base}/api/v1/cameras/{camera}/live", additional_headers=headers, open_timeout=10)


def frames(viewer: ClientConnection, count: int) -> tuple[list[str], list[bytes]]:
    texts: list[str] = []
    media: list[bytes] = []
    while len(media) < count:
        message = viewer.recv(timeout=20)
        if isinstance(message, str):
            texts.append(json.loads(message)["state"])
            assert texts[-1] in ("waiting", "playing"), message
        else:
            media.append(message)
    return texts, media


def dial(hub: Hub, session: str, token: str) -> ClientConnection:
    url = f"ws://{hub.base}{MEDIA_AGENT_PATH.format(session=session)}"
    return connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10)


def test_viewers_share_one_upstream_that_stops_after_the_last_leaves(hub: Hub) -> None:
    first = watch(hub, "owner1")
    texts, media = frames(first, 20)
    assert texts[0] == "waiting" and "playing" in texts
    assert fmp4.is_init(media[0]) and fmp4.starts_with_keyframe(media[1])
    assert [r.ok for r in hub.box.replies] == [True]
    second = watch(hub, "police1")  # joins late: init, then from a keyframe, at once
    _, late = frames(second, 3)
    assert late[0] == media[0] and fmp4.starts_with_keyframe(late[1])
    assert len(hub.box.opened) == 1 and len(hub.media.upstreams) == 1
    first.close()
    frames(second, 5)  # the other viewer carries on
    upstream = next(iter(hub.media.upstreams.values()))
    second.close()
    assert wait_for(lambda: not hub.media.upstreams and upstream.closed, 10)
    source = hub.box.opened[0]
    assert wait_for(lambda: source._closed and source._container is None, 10)
    assert wait_for(lambda: not hub.box.channel._running, 10)  # type: ignore[union-attr]
    conn = db_connect(hub.config.db_path)
    row = conn.execute("SELECT status, payload FROM commands WHERE id = ?", (upstream.session,)).fetchone()
    views = conn.execute("SELECT count(*) FROM audit WHERE action = 'live.view'").fetchone()[0]
    conn.close()
    command = Command.model_validate_json(row["payload"])
    assert row["status"] == "replied" and command.expires is not None and command.expires - command.time <= 10
    assert views >= 2


@pytest.fixture
def pending(hub: Hub) -> Iterator[str]:
    """A session asked of lanxi/shop-2, whose box (not in this test) never dials by itself."""
    viewer = watch(hub, "owner2", "lanxi.shop-2.door")
    assert json.loads(viewer.recv(timeout=10))["state"] == "waiting"
    session = next(u.session for k, u in hub.media.upstreams.items() if k.device == "shop-2")
    yield session
    viewer.close()


def test_the_box_socket_is_refused_for_another_device_an_unknown_session_or_a_person(hub: Hub, pending: str) -> None:
    conn = db_connect(hub.config.db_path)
    shop1 = clips.issue_device_token(conn, audit.CLI, "lanxi", "shop-1")
    shop2 = clips.issue_device_token(conn, audit.CLI, "lanxi", "shop-2")
    conn.close()
    (hub.box.channel.hub.token_file).write_text(shop1)  # type: ignore[union-attr]
    refused = [
        (pending, shop1),  # another device's session, with that device's own valid token
        ("A" * 32, shop2),  # unknown session
        (pending, login(hub, "admin")),  # a person's token
        (pending, "dld_" + "x" * 40),  # a made-up device token
    ]
    for session, token in refused:
        with pytest.raises(InvalidStatus) as caught:
            dial(hub, session, token)
        assert caught.value.response.status_code == 403
    with dial(hub, pending, shop2) as accepted:  # the right device: taken, then no one else may
        with pytest.raises(InvalidStatus):
            dial(hub, pending, shop2)
        accepted.close()


def test_a_camera_the_viewer_may_not_see_or_an_offline_box(hub: Hub) -> None:
    with watch(hub, "owner2", "lanxi.shop-1.door") as viewer:
        with pytest.raises(ConnectionClosed):
            viewer.recv(timeout=10)
        assert viewer.close_code == 4404
    with watch(hub, "admin", "dongcun.lane-1.lane") as viewer:
        status = json.loads(viewer.recv(timeout=10))
        assert status["state"] == "offline"
    with pytest.raises(InvalidStatus):  # not signed in
        connect(f"ws://{hub.base}/api/v1/cameras/lanxi.shop-1.door/live", open_timeout=10)


def test_a_camera_the_box_cannot_serve_fails_with_the_box_reason(hub: Hub) -> None:
    with watch(hub, "admin", "lanxi.shop-1.till") as viewer:
        states = [json.loads(viewer.recv(timeout=15)) for _ in range(2)]
    assert states[0]["state"] == "waiting"
    assert states[1] == {"state": "failed", "error": "camera 'till' is not on this box", "time": None}
    assert wait_for(lambda: not hub.media.upstreams, 10)


def test_a_box_sending_media_before_its_init_segment_fails_the_session(hub: Hub) -> None:
    conn = db_connect(hub.config.db_path)
    shop2 = clips.issue_device_token(conn, audit.CLI, "lanxi", "shop-2")
    conn.close()
    with watch(hub, "owner2", "lanxi.shop-2.door") as viewer:
        assert json.loads(viewer.recv(timeout=10))["state"] == "waiting"
        session = next(u.session for k, u in hub.media.upstreams.items() if k.device == "shop-2")
        with dial(hub, session, shop2) as box:
            box.send('{"not": "a notice"}')  # malformed text: ignored, the session goes on
            box.send(b"\x00\x00\x00\x10moofgarbage!")  # a fragment before the init segment
            status = json.loads(viewer.recv(timeout=10))
    assert (status["state"], status["error"]) == ("failed", "the box sent media before its init segment")
    assert wait_for(lambda: not hub.media.upstreams, 10)


def test_a_slow_viewer_loses_what_is_queued_and_resumes_at_a_keyframe() -> None:
    viewer = Viewer(StreamKey("s", "d", "c", "sub"), max_messages=10)
    viewer.offer(b"init", True, init=True)
    for n in range(25):  # nobody reads: the queue fills, is emptied, and waits for a keyframe
        viewer.offer(b"delta %d" % n, False)
    assert viewer.queue.qsize() <= 10 and viewer.skipping
    viewer.offer(b"delta late", False)
    viewer.offer(b"key", True)
    assert viewer.queued_bytes == len(b"init") + len(b"key")
    items = [viewer.queue.get_nowait() for _ in range(viewer.queue.qsize())]
    assert items == [b"init", b"key"]  # the init segment is never dropped: the player needs it
    assert viewer.dropped == 26  # every delta: the 9 queued, the 16 after them and the late one


def test_a_dead_camera_is_a_clear_reason_not_a_crash() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/sub"  # nothing listens
    source = LiveSource(StreamSpec("rtsp", url, url, {"rtsp_transport": "tcp", "timeout": "2000000"}))
    with pytest.raises(MediaUnavailable, match=r"cannot open the camera: rtsp://127\.0\.0\.1"):
        next(iter(source))
    source.close()  # closing twice (the channel always closes) is harmless
