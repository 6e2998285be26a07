"""The door board at the hub: each door's state derived from what ingest stored (contact changes,
swipes, alarms, the box's status and silence), stale gate boxes with how far behind and since
when, acknowledging alarms (audited, once), and who sees what: a dorm manager of another building
gets nothing of b07, not even a door's existence (404)."""

from __future__ import annotations

import html
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from contract import Event, Heartbeat, Status
from edge_agent.events.ids import new_event_id
from hub.access_sync import latest_version
from hub.api.app import create_app
from hub.config import HubConfig
from hub.db import HubDB
from hub.models import CardIssue
from hub.records import Record
from hub.services import accounts, audit, cards, door_board
from hub.store import connect
from tests.test_hub import hub_cmd

PASSWORD = "correct horse battery"
SILENT = 60.0
NOW = time.time()
T = NOW - 3600  # the doors' morning, an hour ago
SITE, B07, B03 = "dorms", "b07-gate", "b03-gate"
SEEDED: dict[str, float] = {}  # what the fixture made that a test checks against


def event(device: str, door: str, kind: str, at: float, building: str = "b07", **detail: Any) -> Record:
    message = Event(
        id=new_event_id(at),
        kind=kind,  # type: ignore[arg-type]
        phase="instant",
        time=at,
        detail={"door": door, "building": building, **detail},
    )
    return Record("event", SITE, device, at, message=message)


def alive(device: str, at: float, version: int | None) -> list[Record]:
    return [
        Record("status", SITE, device, at, message=Status(state="online", time=at)),
        Record(
            "heartbeat", SITE, device, at, message=Heartbeat(time=at, uptime_seconds=9, access_list_version=version)
        ),
    ]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> HubConfig:
    # The clock is read when the hub is seeded, not when the module is imported: in a parallel run
    # a module is imported minutes before its tests, and a box silent that long is offline.
    global NOW, T
    NOW = time.time()
    T = NOW - 3600
    config = HubConfig.model_validate({"data_dir": str(tmp_path_factory.mktemp("door-board") / "hub")})
    db = HubDB(config.db_path)
    conn = connect(config.db_path)
    accounts.add_user(conn, audit.CLI, "admin", PASSWORD, "admin")
    accounts.add_user(conn, audit.CLI, "dorm7", PASSWORD, "dorm_manager", buildings=["b07"])
    accounts.add_user(conn, audit.CLI, "dorm3", PASSWORD, "dorm_manager", buildings=["b03"])
    accounts.add_user(conn, audit.CLI, "police1", PASSWORD, "police", sites=[SITE])
    for door in ("b07-east", "b07-west", "b07-side", "b07-north"):
        cards.set_door(conn, audit.CLI, SITE, B07, door, "b07")
    cards.set_door(conn, audit.CLI, SITE, B03, "b03-main", "b03")

    def issue(n: int, building: str) -> None:
        body = CardIssue(
            employee_no=f"E{n:03d}",
            name=f"住户{n}",
            building=building,
            room="301",
            card_number=f"12/{n}",
            card_format="wiegand26",
        )
        cards.issue(conn, audit.CLI, None, body)

    issue(1, "b07")
    issue(2, "b03")
    held = latest_version(conn, ["b07"])  # b07-gate holds this; three changes come after it
    for n in (3, 4, 5):
        issue(n, "b07")
    SEEDED["first_missing"] = conn.execute(
        "SELECT min(time) FROM list_changes WHERE building = 'b07' AND version > ?", (held,)
    ).fetchone()[0]
    b03_current = latest_version(conn, ["b03"])
    conn.close()
    db.write(
        [
            *alive(B07, NOW - 5, held),
            *alive(B03, NOW - SILENT - 30, b03_current),  # silent since
            # b07-east: forced early on and closed again; later a grant and an ordinary opening.
            event(B07, "b07-east", "door", T - 600, open=True),
            event(B07, "b07-east", "door_alarm", T - 600, alarm="forced_open", why="no grant"),
            event(B07, "b07-east", "door", T - 590, open=False),
            event(B07, "b07-east", "access", T, granted=True, reason="granted", employee_no="E001", name="住户1"),
            event(B07, "b07-east", "door", T + 1, open=True),
            # b07-west: forced now (the opening, then its alarm, in the box's order).
            event(B07, "b07-west", "access", T + 5, granted=False, reason="wrong_building", name="住户2"),
            event(B07, "b07-west", "door", T + 10, open=True),
            event(B07, "b07-west", "door_alarm", T + 10, alarm="forced_open", why="no grant"),
            # b07-side: opened with a grant, then held open.
            event(B07, "b07-side", "door", T + 20, open=True),
            event(B07, "b07-side", "door_alarm", T + 51, alarm="held_open", why="open for more than 30 s"),
            # b03-main: closed, but its box has been silent past the window.
            event(B03, "b03-main", "door", T + 30, building="b03", open=False),
            event(B03, "b03-main", "door_alarm", T + 31, building="b03", alarm="repeated_denials", why="5 refusals"),
        ]
    )
    db.close()
    return config


@pytest.fixture(scope="module")
def client(config: HubConfig) -> Iterator[TestClient]:
    with TestClient(create_app(config)) as client:
        yield client


def sign_in(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def states(board: list[door_board.BuildingDoors]) -> dict[str, str]:
    return {d.door: d.state for b in board for d in b.doors}


def test_each_doors_state_comes_from_its_contact_alarms_and_box(config: HubConfig) -> None:
    conn = connect(config.db_path)
    try:
        board = door_board.doors(conn, None, SILENT, NOW)
    finally:
        conn.close()
    assert [b.building for b in board] == ["b03", "b07"]
    assert states(board) == {
        "b03-main": "offline",  # closed when last heard, but its box went silent 90 s ago
        "b07-east": "open",  # the forced opening was closed; this one followed a grant
        "b07-north": "unknown",  # never reported its contact
        "b07-side": "held_open",
        "b07-west": "forced",
    }
    doors = {d.door: d for b in board for d in b.doors}
    assert doors["b07-east"].since == T + 1 and doors["b07-west"].since == T + 10
    assert doors["b03-main"].since == pytest.approx(NOW - SILENT - 30)
    east = doors["b07-east"].last_decision
    assert east is not None and (east.granted, east.reason, east.time) == (True, "granted", T)
    west = doors["b07-west"].last_decision
    assert west is not None and (west.granted, west.reason) == (False, "wrong_building")
    assert "住户" not in door_board.DoorBoard(buildings=board, alarms=[], gates=[]).model_dump_json()  # no names
    # The old forced alarm of b07-east is not acknowledged: the door is highlighted though now open.
    assert {n: d.open_alarms for n, d in doors.items()} == {
        "b03-main": 1,
        "b07-east": 1,
        "b07-north": 0,
        "b07-side": 1,
        "b07-west": 1,
    }
    # The same box heard from in time is online again; a last will makes it offline at once.
    conn = connect(config.db_path)
    try:
        assert states(door_board.doors(conn, None, SILENT + 60, NOW))["b03-main"] == "closed"
    finally:
        conn.close()


def test_a_gate_whose_list_is_behind_says_by_how_much_and_since_when(config: HubConfig) -> None:
    conn = connect(config.db_path)
    try:
        gates = {g.device: g for g in door_board.board(conn, None, SILENT, NOW).gates}
    finally:
        conn.close()
    b07, b03 = gates[B07], gates[B03]
    assert b07.stale and b07.behind == 3 and b07.stale_since == SEEDED["first_missing"]
    assert not b03.stale and b03.behind == 0 and b03.stale_since is None


def test_a_dorm_manager_sees_only_their_buildings_doors_alarms_and_gates(client: TestClient) -> None:
    dorm3 = sign_in(client, "dorm3")
    board = client.get("/api/v1/doors/board", headers=dorm3).json()
    assert [b["building"] for b in board["buildings"]] == ["b03"]
    assert {a["building"] for a in board["alarms"]} == {"b03"}
    assert [g["device"] for g in board["gates"]] == [B03]
    one = client.get(f"/api/v1/doors/{SITE}/{B03}/b03-main", headers=dorm3)
    assert one.status_code == 200 and one.json()["state"] == "offline", one.text
    # b07 is not theirs: its doors and alarms answer exactly as what does not exist.
    missing = client.get(f"/api/v1/doors/{SITE}/{B07}/b07-west", headers=dorm3)
    assert missing.status_code == 404 and "b07-west" in missing.json()["detail"]
    assert client.get(f"/api/v1/doors/{SITE}/{B07}/no-such-door", headers=dorm3).status_code == 404
    dorm7 = sign_in(client, "dorm7")
    b07_alarm = next(a for a in client.get("/api/v1/doors/alarms", headers=dorm7).json()["items"])
    assert client.get(f"/api/v1/doors/alarms/{b07_alarm['id']}", headers=dorm3).status_code == 404
    ack = client.post(f"/api/v1/doors/alarms/{b07_alarm['id']}/ack", json={"note": "x"}, headers=dorm3)
    assert ack.status_code == 404
    # Other roles: refused outright; an admin sees every building.
    police = sign_in(client, "police1")
    assert client.get("/api/v1/doors/board", headers=police).status_code == 403
    client.cookies.clear()  # the logins set session cookies too
    assert client.get("/api/v1/doors/board").status_code == 401
    admin = client.get("/api/v1/doors/board", headers=sign_in(client, "admin")).json()
    assert [b["building"] for b in admin["buildings"]] == ["b03", "b07"]


def test_an_alarm_is_acknowledged_once_with_who_when_and_a_note_audited(client: TestClient, config: HubConfig) -> None:
    dorm7 = sign_in(client, "dorm7")
    alarms = client.get("/api/v1/doors/alarms", headers=dorm7).json()["items"]
    forced = next(a for a in alarms if a["door"] == "b07-west")
    assert (forced["alarm"], forced["ack"]) == ("forced_open", None)
    response = client.post(
        f"/api/v1/doors/alarms/{forced['id']}/ack", json={"note": "宿管到场，门已关好"}, headers=dorm7
    )
    assert response.status_code == 200, response.text
    ack = response.json()["ack"]
    assert ack["by"] == "dorm7" and ack["note"] == "宿管到场，门已关好" and abs(ack["at"] - time.time()) < 60
    again = client.post(f"/api/v1/doors/alarms/{forced['id']}/ack", json={"note": ""}, headers=dorm7)
    assert again.status_code == 409 and "acknowledged by dorm7" in again.json()["detail"]
    too_long = client.post(f"/api/v1/doors/alarms/{alarms[0]['id']}/ack", json={"note": "x" * 501}, headers=dorm7)
    assert too_long.status_code == 422 and "note" in too_long.text
    board = client.get("/api/v1/doors/board", headers=dorm7).json()
    west = next(d for b in board["buildings"] for d in b["doors"] if d["door"] == "b07-west")
    assert west["open_alarms"] == 0 and west["state"] == "forced"  # handled, though the door is still open
    listed = [a for a in board["alarms"] if a["id"] == forced["id"]]
    assert listed and listed[0]["ack"]["by"] == "dorm7"  # still shown for a day, as acknowledged
    conn = connect(config.db_path)
    try:
        rows = audit.search(conn, action="door_alarm.ack").items
    finally:
        conn.close()
    assert [(r.actor, r.target) for r in rows] == [("dorm7", forced["id"])]
    detail = json.loads(rows[0].detail)
    assert detail["note"] == "宿管到场，门已关好" and detail["door"] == "b07-west"


def test_the_board_page_is_chinese_by_default_and_english_on_request(client: TestClient) -> None:
    dorm7 = sign_in(client, "dorm7")

    def words(page: str) -> dict[str, str]:
        found = re.search(r"data-words='([^']*)'", page)
        assert found is not None
        return dict(json.loads(html.unescape(found.group(1))))

    page = client.get("/doors", headers=dorm7)
    assert page.status_code == 200 and "<title>门禁看板" in page.text
    assert words(page.text)["door_forced"] == "强行开门"
    english = client.get("/doors?lang=en", headers=dorm7).text
    assert "<title>Door board" in english and words(english)["door_forced"] == "Forced open"
    assert client.get("/doors", headers=sign_in(client, "police1")).status_code == 403


def test_no_query_of_the_board_walks_the_whole_events_table(config: HubConfig) -> None:
    """The board is computed twice a second per viewer over years of swipes: every statement it
    runs must reach events through an index (bench/door_board.py has the figures)."""
    conn = connect(config.db_path)
    statements: list[str] = []
    try:
        conn.set_trace_callback(statements.append)
        door_board.board(conn, None, SILENT, NOW)
        door_board.alarms(conn, None, NOW, alarm_id="01J0000000000000000000000")
        conn.set_trace_callback(None)
        selects = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT") and "events" in sql]
        assert len(selects) > 10
        for sql in selects:
            plan = [str(r["detail"]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]
            assert not any(p.startswith("SCAN e") or "ANY(" in p for p in plan), (sql, plan)  # no scan, no skip-scan
            assert any("idx_events_door" in p or "sqlite_autoindex_events" in p for p in plan), (sql, plan)
    finally:
        conn.close()


def test_the_cli_prints_the_board_and_acknowledges_as_the_cli(config: HubConfig, tmp_path: Path) -> None:
    config_file = tmp_path / "hub.yaml"
    config_file.write_text(yaml.safe_dump({"data_dir": str(config.data_dir)}))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(hub_cmd("doors", *args, "--config", str(config_file)), capture_output=True, text=True)

    board = door_board.DoorBoard.model_validate_json(run("board").stdout)
    assert states(board.buildings)["b07-west"] == "forced" and states(board.buildings)["b03-main"] == "offline"
    b03 = next(a for a in board.alarms if a.building == "b03")
    missing = run("ack", "--alarm", "01J0NOSUCHALARM000000000000")
    assert missing.returncode != 0 and "no door alarm '01J0NOSUCHALARM000000000000'" in missing.stderr
    too_long = run("ack", "--alarm", b03.id, "--note", "x" * 501)
    assert too_long.returncode != 0 and "--note" in too_long.stderr and "500" in too_long.stderr
    done = run("ack", "--alarm", b03.id, "--note", "box restarted")
    assert done.returncode == 0, done.stderr
    ack = door_board.DoorAlarm.model_validate_json(done.stdout).ack
    assert ack is not None and (ack.by, ack.note) == ("cli", "box restarted")
