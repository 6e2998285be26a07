"""The box's side of evidence clips, end to end: a real `diaolou-hub run`, Mosquitto and an agent
recording a file camera. A police user asks for a clip over HTTP; the agent builds it from its
ring buffer, holds the window, uploads it with its device token and replies; the package
verifies offline. A window the box never recorded fails with the box's reason. The HTTP client's
resume after a broken connection and its give-up are checked against a small stand-in hub."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract import Command, Reply
from edge_agent.agent import Agent
from edge_agent.comms.clip_job import JOBS_DIR, ClipJobs
from edge_agent.config import parse_config
from edge_agent.config.schema import HubLinkConfig
from edge_agent.record.index import SegmentIndex
from hub.services import alerts
from hub.store import connect
from tests.conftest import agent_cmd, wait_for
from tests.support.brokers import Broker
from tests.support.recording import record_file
from tests.test_hub import WAIT, HubProcess, hub_cmd, hub_config, write_config
from tests.test_web_api import PASSWORD, make_hub_data


def agent_config(tmp_path: Path, broker: Broker, hub_url: str | None, token_file: Path | None, video: Path) -> str:
    hub = f"hub: {{url: '{hub_url}', token_file: '{token_file}'}}\n" if hub_url else ""
    return (
        f"site: lanxi\ndevice: shop-1\nstorage: {{root: {tmp_path / 'rec'}, index_flush_seconds: 0}}\n"
        f"mqtt: {{url: '{broker.url()}', protocol: {broker.protocol}, heartbeat_seconds: 1}}\n{hub}"
        f"cameras:\n  door: {{source: {video}, detect: {{enabled: false}}, record: {{segment_seconds: 2}}}}\n"
    )


def ask(base: str, token: str, start: float, end: float) -> str:
    body = {"camera": "lanxi.shop-1.door", "start": start, "end": end, "reason": "案件 2026-140 broken lock"}
    answer = httpx.post(f"{base}/api/v1/clips", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def clip_state(base: str, token: str, clip_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{base}/api/v1/clips/{clip_id}", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


def test_a_police_users_clip_is_built_held_and_uploaded_by_the_recording_agent(
    mosquitto: Broker, tmp_path: Path, h264_file: Path
) -> None:
    config = hub_config(tmp_path, mosquitto.url(), mosquitto.protocol)
    make_hub_data(config.data_dir)  # police1 sees site lanxi; lanxi/shop-1 has camera door
    hub_file = write_config(tmp_path, config)
    issued = subprocess.run(
        hub_cmd("devices", "token", "--config", str(hub_file), "--site", "lanxi", "--device", "shop-1"),
        capture_output=True,
        text=True,
    )
    assert issued.returncode == 0, issued.stderr
    token_file = tmp_path / "hub-token"
    token_file.write_text(issued.stdout)
    token_file.chmod(0o600)
    base = f"http://{config.listen}"
    hub = HubProcess(hub_file, tmp_path / "hub.log").start()
    agent = Agent(parse_config(agent_config(tmp_path, mosquitto, base, token_file, h264_file)))
    try:
        assert wait_for(lambda: "web UI and API on" in hub.log_path.read_text(), WAIT)
        login = httpx.post(f"{base}/api/v1/auth/login", json={"username": "police1", "password": PASSWORD})
        police = login.json()["token"]
        before = time.time() - 600
        # Asked before the box has said how far back it records: the hub passes it on and the box
        # answers that it has nothing then.
        empty_id = ask(base, police, before, before + 60)
        agent.start()
        assert agent.link is not None and agent.link.wait_connected(WAIT)
        assert wait_for(lambda: len(agent.index.segments("door", 0, time.time() + 60)) >= 3, WAIT)
        segments = agent.index.segments("door", 0, time.time() + 60)
        start, end = segments[0].start + 0.5, segments[2].end - 0.5

        ready_id = ask(base, police, start, end)
        assert wait_for(lambda: clip_state(base, police, ready_id)["status"] == "ready", 60), clip_state(
            base, police, ready_id
        )
        assert wait_for(lambda: clip_state(base, police, empty_id)["status"] == "failed", WAIT)
        failed = clip_state(base, police, empty_id)
        assert "no recording for camera 'door'" in failed["error"], failed

        # Once its heartbeat says from when it keeps the camera, the hub refuses such a window itself.
        def kept_from() -> float | None:
            conn = connect(config.db_path)
            try:
                health = alerts.reported_health(conn, "lanxi", "shop-1", "door")
            finally:
                conn.close()
            return health.recorded_from if health else None

        assert wait_for(lambda: kept_from() == segments[0].start, WAIT)
        body = {"camera": "lanxi.shop-1.door", "start": before, "end": before + 60, "reason": "again"}
        again = httpx.post(f"{base}/api/v1/clips", json=body, headers={"Authorization": f"Bearer {police}"})
        assert again.status_code == 422 and "keeps door's recordings from" in again.text, again.text

        ready = clip_state(base, police, ready_id)
        auth = {"Authorization": f"Bearer {police}"}
        package = tmp_path / "evidence.zip"
        package.write_bytes(httpx.get(base + ready["package"], headers=auth).raise_for_status().content)
        key = httpx.get(f"{base}/api/v1/evidence/public-key", headers=auth).json()["pem"]
        verified = subprocess.run(hub_cmd("verify-evidence", str(package), "--public-key", key), capture_output=True)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert b"camera lanxi.shop-1.door" in verified.stdout

        # The window is on legal hold at the box: retention cannot take its segments.
        holds = [h for h in agent.index.holds("door") if h.reason == f"evidence clip {ready_id}"]
        assert len(holds) == 1 and (holds[0].start, holds[0].end) == (start, end)
        assert not [h for h in agent.index.holds("door") if empty_id in h.reason]  # nothing to hold there
        unheld = {s.path for s in agent.index.oldest_unheld(1000, camera="door")}
        assert not unheld & {s.path for s in segments[:3]}
        # Both commands are answered, so the hub never sends them again; the box kept each reply.
        conn = connect(config.db_path)
        try:
            rows = {
                r["id"]: r
                for r in conn.execute("SELECT c.id, c.replied, r.ok FROM commands c JOIN replies r USING (id)")
            }
        finally:
            conn.close()
        assert rows.keys() == {ready_id, empty_id}
        assert rows[ready_id]["ok"] == 1 and rows[empty_id]["ok"] == 0
        jobs = agent.root / JOBS_DIR
        assert Reply.model_validate_json((jobs / ready_id / "reply.json").read_bytes()).ok
        assert not (jobs / ready_id / "clip.mp4").exists()  # the hub holds it; the segments stay held

        # Releasing the hold: admins only, with a reason; the box lets the window go; audited.
        release = f"{base}/api/v1/clips/{ready_id}/release-hold"
        refused = httpx.post(release, json={"reason": "case closed"}, headers=auth)
        assert refused.status_code == 403, refused.text
        admin = httpx.post(f"{base}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        admin_auth = {"Authorization": f"Bearer {admin.json()['token']}"}
        assert httpx.post(release, json={"reason": "x"}, headers=admin_auth).status_code == 422  # no real reason
        released = httpx.post(release, json={"reason": "案件 2026-140 closed"}, headers=admin_auth)
        assert released.status_code == 202, released.text
        assert wait_for(lambda: not [h for h in agent.index.holds("door") if ready_id in h.reason], WAIT)
        assert httpx.post(release, json={"reason": "again, by mistake"}, headers=admin_auth).status_code == 409
        conn = connect(config.db_path)
        try:
            assert wait_for(
                lambda: conn.execute(
                    "SELECT 1 FROM clip_custody WHERE clip = ? AND action = 'hold released'", (ready_id,)
                ).fetchone(),
                WAIT,
            )
            audited = conn.execute(
                "SELECT actor, detail FROM audit WHERE action = 'clip.hold_release' AND target = ?", (ready_id,)
            ).fetchall()
        finally:
            conn.close()
        assert [(a["actor"], json.loads(a["detail"])["reason"]) for a in audited] == [("admin", "案件 2026-140 closed")]
    finally:
        agent.shutdown()
        assert hub.terminate() == 0


# --- the HTTP side against a stand-in hub -----------------------------------------------------------
class StandIn(http.server.ThreadingHTTPServer):
    """The hub's clip upload routes, in memory; `break_after` drops the connection on that PUT."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), StandInHandler)
        self.data = bytearray()
        self.total: int | None = None
        self.manifest: dict[str, Any] | None = None
        self.puts = 0
        self.break_on: set[int] = set()
        self.refuse: tuple[int, str] | None = None
        self.reports: list[dict[str, Any]] = []


class StandInHandler(http.server.BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self) -> None:
        self._answer(200, {"received": len(self.server.data), "bytes": self.server.total})

    def do_POST(self) -> None:
        self.server.reports.append(json.loads(self._body()))
        self._answer(200, {})

    def do_PUT(self) -> None:
        body, s = self._body(), self.server
        if s.refuse is not None:
            self._answer(s.refuse[0], {"detail": s.refuse[1]})
            return
        if self.path.endswith("/manifest"):
            s.manifest = json.loads(body)
            self._answer(200 if len(s.data) == s.total else 409, {})
            return
        s.puts += 1
        first, total = self.headers["Content-Range"].removeprefix("bytes ").split("/")
        start = int(first.split("-")[0])
        if start != len(s.data) and start != 0:
            self._answer(409, {"detail": f"resume at byte {len(s.data)}"})
            return
        if s.puts in s.break_on:  # the connection breaks: the hub never confirms the piece
            self.close_connection = True
            self.connection.shutdown(2)
            return
        s.data[start:] = body
        s.total = int(total)
        self._answer(200, {"received": len(s.data)})


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def jobs_for(tmp_path: Path, h264_file: Path, url: str, **kwargs: Any) -> tuple[ClipJobs, list[Reply], float]:
    """A box with 12 s recorded from the file (no agent running), its clip jobs and their replies."""
    root = tmp_path / "rec"
    token = tmp_path / "token"
    token.write_text("dld_test\n")
    text = (
        f"site: lanxi\ndevice: shop-1\nstorage: {{root: {root}}}\nhub: {{url: '{url}', token_file: '{token}'}}\n"
        f"cameras:\n  door: {{source: {h264_file}}}\n"
    )
    index = SegmentIndex(root)
    start = 1_790_000_000.0
    record_file(root, index, h264_file, camera="door", start=start, segment_seconds=4, stop_after=12)
    replies: list[Reply] = []
    jobs = ClipJobs(parse_config(text), index, replies.append, threading.Event(), **kwargs)
    return jobs, replies, start


def clip_command(start: float, end: float, clip_id: str = "01JEXAMPLE0000000000000001") -> Command:
    args = {"clip": clip_id, "camera": "door", "start": start, "end": end, "upload": f"/api/v1/clips/{clip_id}"}
    return Command(id=clip_id, time=time.time(), args=args)


def test_an_upload_broken_off_resumes_and_a_resent_command_builds_nothing_twice(
    stand_in: StandIn, tmp_path: Path, h264_file: Path
) -> None:
    url = f"http://127.0.0.1:{stand_in.server_address[1]}"
    jobs, replies, start = jobs_for(tmp_path, h264_file, url, piece_bytes=64 << 10, retry_seconds=(0.1,))
    stand_in.break_on = {2, 3}
    command = clip_command(start + 1, start + 9)
    jobs.handle(command)
    jobs.handle(command)  # sent again while it runs: carried on, not started twice
    assert wait_for(lambda: len(replies) == 1, WAIT)
    assert replies[0].ok, replies[0].error
    assert stand_in.manifest is not None and len(stand_in.data) == stand_in.manifest["bytes"] == stand_in.total
    assert stand_in.puts == 2 + stand_in.total // (64 << 10) + 1  # the two broken pieces sent again, no more
    assert [r["status"] for r in stand_in.reports] == ["building", "building"]
    jobs.handle(command)  # after the reply: the stored answer again, nothing rebuilt or resent
    assert wait_for(lambda: len(replies) == 2, WAIT)
    assert replies[1].ok and replies[1].result == replies[0].result
    assert len(jobs.index.holds("door")) == 1


def test_the_job_gives_up_with_the_hubs_reason_or_when_the_hub_stays_unreachable(
    stand_in: StandIn, tmp_path: Path, h264_file: Path
) -> None:
    url = f"http://127.0.0.1:{stand_in.server_address[1]}"
    jobs, replies, start = jobs_for(tmp_path, h264_file, url, retry_seconds=(0.05,), attempts=3)
    stand_in.refuse = (413, "a clip may be at most 4294967296 bytes")
    jobs.handle(clip_command(start + 1, start + 5))
    assert wait_for(lambda: len(replies) == 1, WAIT)
    assert not replies[0].ok and "refused the upload (413): a clip may be at most" in (replies[0].error or "")
    unknown = clip_command(start + 1, start + 5, "01JEXAMPLE0000000000000002")
    unknown.args["camera"] = "till"
    jobs.handle(unknown)
    assert wait_for(lambda: len(replies) == 2, WAIT)
    assert replies[1].error == "camera 'till' is not on this box"
    stand_in.shutdown()
    stand_in.server_close()
    jobs.handle(clip_command(start + 1, start + 5, "01JEXAMPLE0000000000000003"))
    assert wait_for(lambda: len(replies) == 3, WAIT)
    assert "could not upload the clip to the hub after 3 tries" in (replies[2].error or "")
    jobs.config = jobs.config.model_copy(update={"hub": HubLinkConfig()})
    jobs.handle(clip_command(start + 1, start + 5, "01JEXAMPLE0000000000000004"))
    assert wait_for(lambda: len(replies) == 4, WAIT)
    assert replies[3].error == "no hub configured on this box: set hub.url and hub.token_file in its config"


def test_config_init_writes_the_hub_section_and_a_half_given_hub_is_refused(tmp_path: Path) -> None:
    init = ["config", "init", "--storage", str(tmp_path / "rec"), "--camera", "door=/dev/video0"]
    flags = ["--hub", "https://hub.example:8443/", "--hub-token-file", "/etc/diaolou/hub-token"]
    done = subprocess.run(agent_cmd(*init, *flags), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    config = parse_config(done.stdout)
    assert config.hub.url == "https://hub.example:8443" and config.hub.token_file == Path("/etc/diaolou/hub-token")
    assert parse_config(subprocess.run(agent_cmd(*init), capture_output=True, text=True).stdout).hub.url is None
    for bad, message in (
        (["--hub", "https://hub.example:8443"], "give both hub.url and hub.token_file, or neither"),
        (["--hub", "ftp://hub.example", "--hub-token-file", "t"], "hub url must look like http(s)://HOST:PORT"),
        (["--hub", "http://me:pw@hub:80", "--hub-token-file", "t"], "must not hold credentials"),
    ):
        refused = subprocess.run(agent_cmd(*init, *bad), capture_output=True, text=True)
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr
