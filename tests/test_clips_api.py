"""Evidence clips over HTTP against a real hub app and hub.db: a person asks, the test plays the
box (device token, progress, a resumable upload of a real MP4 broken off mid-way, the manifest),
the hub checks and stores it, and the signed package verifies offline; bad requests and bad
uploads are refused with a reason and leave nothing half-stored."""

from __future__ import annotations

import hashlib
import json
import queue
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient

from contract import CameraHealth, Command, Heartbeat, Reply, Status, encode
from contract.topics import device_prefix, topic
from hub.api.app import create_app
from hub.commands_out import CommandSender
from hub.config import HubConfig
from hub.db import HubDB
from hub.evidence.verify import verify
from hub.ingest import Ingest
from hub.models import Principal
from hub.records import Record
from hub.services import audit, clips
from hub.store import connect
from tests.conftest import wait_for
from tests.support.brokers import Broker
from tests.test_evidence import make_mp4, manifest_for
from tests.test_hub import WAIT, HubProcess, Publisher, hub_cmd, hub_config, write_config
from tests.test_web_api import PASSWORD, make_hub_data

Hub = tuple[HubConfig, TestClient]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("clips-template") / "hub"
    make_hub_data(data_dir)
    return data_dir


@pytest.fixture
def hub(template: Path, tmp_path: Path) -> Iterator[Hub]:
    shutil.copytree(template, tmp_path / "hub")
    config = HubConfig.model_validate({"data_dir": str(tmp_path / "hub")})
    with TestClient(create_app(config)) as client:
        yield config, client


@pytest.fixture
def mp4(tmp_path: Path) -> Path:
    return make_mp4(tmp_path / "clip.mp4", frames=48)


def sign_in(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def device_token(config: HubConfig, site: str, device: str) -> dict[str, str]:
    conn = connect(config.db_path)
    try:
        return {"Authorization": f"Bearer {clips.issue_device_token(conn, audit.CLI, site, device)}"}
    finally:
        conn.close()


def ask(client: TestClient, headers: dict[str, str], camera: str = "lanxi.shop-1.door", **extra: object) -> str:
    now = time.time()
    body = {"camera": camera, "start": now - 600, "end": now - 540, "reason": "案件 2026-118 stolen chairs", **extra}
    response = client.post("/api/v1/clips", json=body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    return str(response.json()["id"])


def put_piece(client: TestClient, box: dict[str, str], clip_id: str, data: bytes, start: int, end: int) -> int:
    headers = {**box, "Content-Range": f"bytes {start}-{end - 1}/{len(data)}"}
    return client.put(f"/api/v1/clips/{clip_id}/upload", content=data[start:end], headers=headers).status_code


def upload_whole(client: TestClient, box: dict[str, str], clip_id: str, data: bytes, manifest: bytes) -> None:
    assert put_piece(client, box, clip_id, data, 0, len(data)) == 200
    response = client.put(f"/api/v1/clips/{clip_id}/manifest", content=manifest, headers=box)
    assert response.status_code == 200, response.text


def count(config: HubConfig, sql: str, *params: object) -> int:
    conn = connect(config.db_path)
    try:
        return int(conn.execute(sql, params).fetchone()[0])
    finally:
        conn.close()


def test_a_clip_goes_from_request_to_a_signed_package_that_verifies(hub: Hub, mp4: Path, tmp_path: Path) -> None:
    config, client = hub
    police = sign_in(client, "police1")
    clip_id = ask(client, police)
    conn = connect(config.db_path)
    row = conn.execute("SELECT * FROM commands WHERE id = ?", (clip_id,)).fetchone()
    conn.close()
    command = Command.model_validate_json(row["payload"])
    assert (row["site"], row["device"], row["name"], row["status"]) == ("lanxi", "shop-1", "clip", "queued")
    assert command.args["camera"] == "door" and command.args["end"] - command.args["start"] == 60

    box = device_token(config, "lanxi", "shop-1")
    building = client.post(f"/api/v1/clips/{clip_id}/report", json={"status": "building", "progress": 0.5}, headers=box)
    assert building.status_code == 200
    state = client.get(f"/api/v1/clips/{clip_id}", headers=police).json()
    assert state["status"] == "building" and state["progress"] == 0.5 and state["package"] is None

    # The upload breaks off after the first third; the box asks where to resume and goes on.
    data, third = mp4.read_bytes(), mp4.stat().st_size // 3
    assert put_piece(client, box, clip_id, data, 0, third) == 200
    state = client.get(f"/api/v1/clips/{clip_id}", headers=police).json()
    assert state["status"] == "uploading" and state["received"] == third
    assert abs(state["progress"] - third / len(data)) < 1e-9
    skipped = client.put(
        f"/api/v1/clips/{clip_id}/upload",
        content=data[2 * third :],
        headers={**box, "Content-Range": f"bytes {2 * third}-{len(data) - 1}/{len(data)}"},
    )
    assert skipped.status_code == 409 and f"resume at byte {third}" in skipped.json()["detail"]
    assert client.get(f"/api/v1/clips/{clip_id}/upload", headers=box).json()["received"] == third
    assert put_piece(client, box, clip_id, data, third, 2 * third) == 200
    assert put_piece(client, box, clip_id, data, 2 * third, len(data)) == 200
    manifest = manifest_for(mp4)
    stored = client.put(f"/api/v1/clips/{clip_id}/manifest", content=manifest, headers=box)
    assert stored.status_code == 200, stored.text
    ready = client.get(f"/api/v1/clips/{clip_id}", headers=police).json()
    assert ready["status"] == "ready" and ready["sha256"] == hashlib.sha256(data).hexdigest()
    assert (config.data_dir / "clips" / f"{clip_id}.mp4").read_bytes() == data

    key = client.get("/api/v1/evidence/public-key", headers=police).json()
    for n in (1, 2):
        response = client.get(ready["package"], headers=police)
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        assert f"evidence-{clip_id}.zip" in response.headers["content-disposition"]
        package = tmp_path / f"evidence-{n}.zip"
        package.write_bytes(response.content)
        result = verify(package, key["public_key"])
        assert result.ok, result.problems
        assert result.custody is not None
        actions = [e.action for e in result.custody.entries]
        assert actions[:4] == ["requested", "building", "uploading", "verified"]
        assert actions.count("downloaded") == n and result.custody.entries[-1].actor == "police1"
        with zipfile.ZipFile(package) as zf:
            assert zf.read("clip.mp4") == data and zf.read("manifest.json") == manifest
    assert not list((config.data_dir / "clips" / ".packages").iterdir())  # the scratch copies are gone
    assert count(config, "SELECT count(*) FROM audit WHERE action = 'clip.request' AND target = ?", clip_id) == 1
    assert count(config, "SELECT count(*) FROM audit WHERE action = 'clip.download' AND actor = 'police1'") == 2
    done = subprocess.run(hub_cmd("verify-evidence", str(package), "--public-key", key["pem"]), capture_output=True)
    assert done.returncode == 0, done.stderr  # the PEM text itself, or a file holding it
    (tmp_path / "hub.pem").write_text(key["pem"])
    done = subprocess.run(
        hub_cmd("verify-evidence", str(package), "--public-key", str(tmp_path / "hub.pem")), capture_output=True
    )
    assert done.returncode == 0 and b"intact" in done.stdout


def test_bad_requests_are_refused_with_a_reason_and_nothing_is_stored(hub: Hub) -> None:
    config, client = hub
    police = sign_in(client, "police1")
    now = time.time()
    bad = [
        ({"start": now - 3600, "end": now - 1}, 422, "at most 30 minutes"),
        ({"start": now - 60, "end": now - 120}, 422, "end must be after its start"),
        ({"start": now, "end": now + 600}, 422, "in the future"),
        ({"start": "yesterday", "end": now}, 422, "not an ISO 8601 time"),
        ({"start": -5.0, "end": now}, 422, "not a time between 1970 and 2100"),
        ({"camera": "dongcun.lane-1.lane"}, 404, "no camera"),  # another site's camera
        ({"camera": "lanxi.shop-1.nope"}, 404, "no camera"),
        ({"reason": ""}, 422, "reason"),
    ]
    for change, status, message in bad:
        body = {"camera": "lanxi.shop-1.door", "start": now - 600, "end": now - 540, "reason": "case 7", **change}
        response = client.post("/api/v1/clips", json=body, headers=police)
        assert response.status_code == status and message in response.json()["detail"], (change, response.text)
    nan = '{"camera": "lanxi.shop-1.door", "start": NaN, "end": NaN, "reason": "case 7"}'
    response = client.post("/api/v1/clips", content=nan, headers={**police, "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert count(config, "SELECT count(*) FROM clips") == 0 and count(config, "SELECT count(*) FROM commands") == 0
    # Only who may see the camera may ask: a shop owner for their own camera only, a dorm manager never.
    assert (
        client.post(
            "/api/v1/clips",
            json={"camera": "lanxi.shop-2.door", "start": now - 60, "end": now - 30, "reason": "mine?"},
            headers=sign_in(client, "owner1"),
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/v1/clips",
            json={"camera": "lanxi.shop-1.door", "start": now - 60, "end": now - 30, "reason": "chairs"},
            headers=sign_in(client, "dorm1"),
        ).status_code
        == 404
    )
    own = ask(client, sign_in(client, "owner1"), start="2026-12-04T01:00:00Z", end="2026-12-04T01:10:00+00:00")
    assert client.get(f"/api/v1/clips/{own}", headers=sign_in(client, "owner1")).json()["start"] == 1796346000.0


def test_who_sees_which_clip(hub: Hub) -> None:
    _, client = hub
    police, owner1, owner2 = (sign_in(client, u) for u in ("police1", "owner1", "owner2"))
    clip_id = ask(client, police)
    assert client.get(f"/api/v1/clips/{clip_id}", headers=sign_in(client, "admin")).status_code == 200
    for other in (owner1, owner2):  # the camera's own shop owner does not see a police request either
        assert client.get(f"/api/v1/clips/{clip_id}", headers=other).status_code == 404
        assert client.get(f"/api/v1/clips/{clip_id}/package", headers=other).status_code == 404
        assert client.get("/api/v1/clips", headers=other).json()["items"] == []
    not_ready = client.get(f"/api/v1/clips/{clip_id}/package", headers=police)
    assert not_ready.status_code == 409 and "queued, not ready" in not_ready.json()["detail"]
    assert [c["id"] for c in client.get("/api/v1/clips", headers=police).json()["items"]] == [clip_id]


def test_uploads_are_checked_and_nothing_half_stored(hub: Hub, mp4: Path) -> None:
    config, client = hub
    police = sign_in(client, "police1")
    clip_id = ask(client, police)
    box = device_token(config, "lanxi", "shop-1")
    data, manifest = mp4.read_bytes(), manifest_for(mp4)
    url = f"/api/v1/clips/{clip_id}"
    stored = config.data_dir / "clips" / f"{clip_id}.mp4"

    # Who may upload: this box with its current token, nobody else.
    assert client.put(f"{url}/upload", content=b"x").status_code == 401
    assert client.put(f"{url}/upload", content=b"x", headers=police).status_code == 403
    other_box = device_token(config, "lanxi", "shop-2")
    assert put_piece(client, other_box, clip_id, data, 0, len(data)) == 404
    old = box
    box = device_token(config, "lanxi", "shop-1")  # a new token replaces the old one
    assert put_piece(client, old, clip_id, data, 0, len(data)) == 401

    # A piece whose body is not what Content-Range says, a range outside the file, no range, too big.
    short = client.put(
        f"{url}/upload", content=data[:100], headers={**box, "Content-Range": f"bytes 0-199/{len(data)}"}
    )
    assert short.status_code == 400 and "the body has 100 bytes" in short.json()["detail"]
    assert client.put(f"{url}/upload", content=b"x", headers={**box, "Content-Range": "bytes 5-5/3"}).status_code == 400
    assert client.put(f"{url}/upload", content=b"x", headers=box).status_code == 400
    huge = client.put(f"{url}/upload", content=b"x", headers={**box, "Content-Range": f"bytes 0-0/{1 << 40}"})
    assert huge.status_code == 413
    # A truncated upload: the manifest before the last byte is refused, nothing is kept as the clip.
    assert put_piece(client, box, clip_id, data, 0, len(data) // 2) == 200
    early = client.put(f"{url}/manifest", content=manifest, headers=box)
    assert early.status_code == 409 and "incomplete" in early.json()["detail"]
    assert not stored.exists() and client.get(url, headers=police).json()["status"] == "uploading"
    # A manifest whose hash does not match: refused, the upload discarded, the box starts over.
    assert put_piece(client, box, clip_id, data, len(data) // 2, len(data)) == 200
    wrong = json.loads(manifest)
    wrong["sha256"] = "0" * 64
    refused = client.put(f"{url}/manifest", content=json.dumps(wrong).encode(), headers=box)
    assert refused.status_code == 422 and "does not match the manifest" in refused.json()["detail"]
    state = client.get(url, headers=police).json()
    assert state["status"] == "uploading" and state["received"] == 0 and "discarded" in state["error"]
    assert not stored.exists() and not list((config.data_dir / "clips").glob("*.part"))
    other_camera = client.put(f"{url}/manifest", content=manifest_for(mp4, camera="till"), headers=box)
    assert other_camera.status_code == 422 and "camera" in other_camera.json()["detail"]
    assert client.put(f"{url}/manifest", content=b"{not json", headers=box).status_code == 422
    upload_whole(client, box, clip_id, data, manifest)
    assert client.get(url, headers=police).json()["status"] == "ready" and stored.read_bytes() == data
    assert put_piece(client, box, clip_id, data, 0, len(data)) == 409  # ready: nothing more to upload


def test_a_window_older_than_the_box_keeps_is_refused_before_any_command(hub: Hub) -> None:
    """The box's heartbeat says from when it keeps each camera's recordings (its ring buffer's far
    end): a clip ending before that is refused at once with the date, not sent to fail on the box."""
    config, client = hub
    police = sign_in(client, "police1")
    now = time.time()
    kept_from = now - 7 * 86400
    health = CameraHealth(
        camera="door",
        state="online",
        fps=5.0,
        dropped_packets=0,
        recording=True,
        recorded_from=kept_from,
        last_segment_end=now - 5,
    )
    beat = Heartbeat(time=now, uptime_seconds=60, cameras=[health])
    db = HubDB(config.db_path)
    db.write([Record("heartbeat", "lanxi", "shop-1", now, message=beat)])
    db.close()
    old = {"camera": "lanxi.shop-1.door", "start": kept_from - 900, "end": kept_from - 300, "reason": "case 8"}
    response = client.post("/api/v1/clips", json=old, headers=police)
    assert response.status_code == 422, response.text
    assert "keeps door's recordings from" in response.json()["detail"]
    assert count(config, "SELECT count(*) FROM clips") == 0 and count(config, "SELECT count(*) FROM commands") == 0
    # A window reaching into what is kept goes to the box; so does any window of a camera whose box
    # has not said (an older agent: the box answers for itself).
    assert ask(client, police, start=kept_from - 60, end=kept_from + 240)
    assert ask(client, police, camera="lanxi.shop-1.till", start=kept_from - 900, end=kept_from - 300)
    assert count(config, "SELECT count(*) FROM commands") == 2


def test_a_box_that_cannot_build_the_clip_says_why(hub: Hub) -> None:
    config, client = hub
    police = sign_in(client, "police1")
    clip_id = ask(client, police)
    box = device_token(config, "lanxi", "shop-1")
    error = "no recording for camera 'door' in the window"
    response = client.post(f"/api/v1/clips/{clip_id}/report", json={"status": "failed", "error": error}, headers=box)
    assert response.status_code == 200
    state = client.get(f"/api/v1/clips/{clip_id}", headers=police).json()
    assert state["status"] == "failed" and state["error"] == error


def test_the_cli_issues_box_tokens_lists_clips_and_writes_packages(hub: Hub, mp4: Path, tmp_path: Path) -> None:
    config, client = hub
    clip_id = ask(client, sign_in(client, "police1"))
    config_file = tmp_path / "hub.yaml"
    config_file.write_text(f"data_dir: {config.data_dir}\nmqtt:\n  url: mqtt://127.0.0.1:1883\n")
    cli = ["--config", str(config_file)]
    token = subprocess.run(
        hub_cmd("devices", "token", *cli, "--site", "lanxi", "--device", "shop-1"), capture_output=True, text=True
    )
    assert token.returncode == 0 and token.stdout.startswith("dld_"), token.stderr
    box = {"Authorization": f"Bearer {token.stdout.strip()}"}
    upload_whole(client, box, clip_id, mp4.read_bytes(), manifest_for(mp4))
    listed = subprocess.run(hub_cmd("clips", "list", *cli, "--json"), capture_output=True, text=True)
    assert [json.loads(line)["status"] for line in listed.stdout.splitlines()] == ["ready"]
    out = tmp_path / "evidence.zip"
    done = subprocess.run(hub_cmd("clips", "package", clip_id, *cli, "--out", str(out)), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    verified = subprocess.run(hub_cmd("verify-evidence", str(out)), capture_output=True, text=True)
    assert verified.returncode == 0 and "1 download(s)" in verified.stdout
    missing = subprocess.run(
        hub_cmd("clips", "package", "nope", *cli, "--out", str(out)), capture_output=True, text=True
    )
    assert missing.returncode == 1 and "no clip" in missing.stderr


def test_an_expired_command_is_dropped_and_never_sent(hub: Hub) -> None:
    """A live view's media command lives seconds: one that expired while its box was offline is
    gone when the box comes back (the viewer left long ago), a clip command is still sent."""
    config, client = hub
    now = time.time()
    clip_id = ask(client, sign_in(client, "police1"))
    stale = Command(id="01JA2B3C4D5E6F7G8H9J0KMEDI", time=now - 30, expires=now - 20, args={"camera": "door"})
    conn = connect(config.db_path)
    conn.execute(
        "INSERT INTO commands (id, site, device, name, payload, created) VALUES (?, 'lanxi', 'shop-1', 'media', ?, ?)",
        (stale.id, stale.model_dump_json(), now - 30),
    )
    conn.commit()
    published: list[str] = []
    sender = CommandSender(config.db_path, lambda name, payload, qos: published.append(name) or True)
    assert sender.run_once(conn) == 1
    assert published == ["diaolou/v1/lanxi/shop-1/cmd/clip"]
    assert [r[0] for r in conn.execute("SELECT id FROM commands")] == [clip_id]
    conn.close()


def test_the_clip_command_waits_for_the_box_and_is_sent_on_each_reconnect_until_it_replies(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """Real Mosquitto, real ingest; a paho client plays the box. The sender is polled by hand
    (run_once) so that 'nothing was sent' is a return value, not a wait."""
    config = hub_config(tmp_path, mosquitto.url(), mosquitto.protocol)
    db = HubDB(config.db_path)
    ingest = Ingest(config, db)
    ingest.start()
    assert ingest.wait_subscribed(WAIT)
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    box = Publisher(mosquitto.port, mosquitto.protocol, "box-lanxi-shop-1")
    box.client.on_message = lambda client, userdata, msg: received.put((msg.topic, msg.payload))
    box.client.subscribe(f"{device_prefix('lanxi', 'shop-1')}/cmd/#", qos=1)
    conn = connect(config.db_path)
    sender = CommandSender(
        config.db_path, lambda t, p, q: ingest.client.publish(t, p, q).rc == mqtt.MQTT_ERR_SUCCESS, poll_seconds=0.05
    )
    police = Principal(user_id=1, username="police1", role="police", locale="zh", sites=frozenset({"lanxi"}))

    def last_status() -> float:
        return float(conn.execute("SELECT max(status_received) FROM devices").fetchone()[0] or 0)

    def say(state: str) -> None:
        """The box's status message, once ingest has stored it."""
        before = last_status()
        box.publish(topic("lanxi", "shop-1", "status"), encode(Status(state=state, time=time.time(), cameras=["door"])))
        assert wait_for(lambda: last_status() > before, WAIT)

    try:
        say("offline")
        now = time.time()
        body = clips.ClipRequest(camera="lanxi.shop-1.door", start=now - 120, end=now - 60, reason="case 9")
        first = clips.request(conn, police, audit.Actor("police1", "police", None), body)
        assert sender.run_once(conn) == 0  # the box is offline: the command waits in hub.db
        say("online")
        assert sender.run_once(conn) == 1
        name, payload = received.get(timeout=WAIT)
        command = Command.model_validate_json(payload)
        assert name.endswith("/cmd/clip") and command.id == first.id and command.args["camera"] == "door"
        assert sender.run_once(conn) == 0  # sent since the box came online
        say("online")  # the box reconnected without replying: the command goes again
        assert sender.run_once(conn) == 1
        assert Command.model_validate_json(received.get(timeout=WAIT)[1]).id == first.id
        reply = Reply(id=first.id, ok=False, time=time.time(), error="no recording for camera 'door' in the window")
        box.publish(topic("lanxi", "shop-1", "reply"), encode(reply))
        assert wait_for(lambda: conn.execute("SELECT count(*) FROM replies").fetchone()[0] == 1, WAIT)
        assert sender.run_once(conn) == 0
        failed = clips.get(conn, police, first.id)
        assert failed is not None and failed.status == "failed" and failed.error == reply.error
        say("online")
        assert sender.run_once(conn) == 0  # replied: never sent again
        # The running sender (a thread, as the hub runs it) sends a new request to the online box.
        sender.start()
        second = clips.request(conn, police, audit.Actor("police1", "police", None), body)
        name, payload = received.get(timeout=WAIT)
        assert Command.model_validate_json(payload).id == second.id and received.empty()
    finally:
        sender.stop()
        conn.close()
        box.close()
        ingest.stop()
        db.close()


def test_a_running_hub_sends_a_police_users_clip_request_to_the_box(mosquitto: Broker, tmp_path: Path) -> None:
    """What `diaolou-hub run` assembles: the web API takes the request, the command sender in the
    same process publishes it on the box's cmd/clip topic."""
    config = hub_config(tmp_path, mosquitto.url(), mosquitto.protocol)
    make_hub_data(config.data_dir)  # users (police1 sees site lanxi) and boxes; lanxi/shop-1 has camera door
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    box = Publisher(mosquitto.port, mosquitto.protocol, "box-lanxi-shop-1")
    box.client.on_message = lambda client, userdata, msg: received.put((msg.topic, msg.payload))
    box.client.subscribe(f"{device_prefix('lanxi', 'shop-1')}/cmd/#", qos=1)
    hub = HubProcess(write_config(tmp_path, config), tmp_path / "hub.log").start()
    try:
        assert wait_for(lambda: "web UI and API on" in hub.log_path.read_text(), WAIT)
        base = f"http://{config.listen}"
        box.publish(
            topic("lanxi", "shop-1", "status"), encode(Status(state="online", time=time.time(), cameras=["door"]))
        )
        token = httpx.post(f"{base}/api/v1/auth/login", json={"username": "police1", "password": PASSWORD}).json()[
            "token"
        ]
        now = time.time()
        body = {
            "camera": "lanxi.shop-1.door",
            "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 120)),
            "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
            "reason": "case 2026-131",
        }
        answer = httpx.post(f"{base}/api/v1/clips", json=body, headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 202, answer.text
        name, payload = received.get(timeout=WAIT)
        command = Command.model_validate_json(payload)
        assert name.endswith("/cmd/clip") and command.id == answer.json()["id"] and command.args["camera"] == "door"
    finally:
        assert hub.terminate() == 0
        box.close()
