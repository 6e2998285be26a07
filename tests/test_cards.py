"""Card administration at the hub: `diaolou-hub cards import|revoke|door`, the dorm manager's API
(scoped to their buildings, audited) and the allow-list versions every change appends."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from contract import Event
from edge_agent.events.ids import new_event_id
from hub.api.app import create_app
from hub.config import HubConfig
from hub.db import HubDB
from hub.records import Record
from hub.services import accounts, audit
from hub.store import connect, open_store
from tests.test_hub import hub_cmd

PASSWORD = "correct horse battery"
HEADER = "employee_no,name,company,building,room,phone,card_number,card_format,valid_from,valid_until\n"
GOOD = HEADER + (
    "E001,李伟,Foxconn,b07,301,13800000000,12/34567,wiegand26,2026-01-01,2027-06-30\n"
    "E002,Wang Fang,Foxconn,b03,101,,1234567890,uid,,\n"
    "E003,Zhao Lei,Luxshare,b07,102,,300/5,wiegand34,,\n"
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("cards") / "hub"
    config = HubConfig.model_validate({"data_dir": str(data_dir)})
    open_store(config.db_path)
    conn = connect(config.db_path)
    accounts.add_user(conn, audit.CLI, "admin", PASSWORD, "admin")
    accounts.add_user(conn, audit.CLI, "dorm7", PASSWORD, "dorm_manager", buildings=["b07"])
    accounts.add_user(conn, audit.CLI, "police1", PASSWORD, "police", sites=["lanxi"])
    conn.close()
    return data_dir


@pytest.fixture
def hub(template: Path, tmp_path: Path) -> Iterator[tuple[Path, TestClient]]:
    data_dir = tmp_path / "hub"
    shutil.copytree(template, data_dir)
    config_file = tmp_path / "hub.yaml"
    config_file.write_text(yaml.safe_dump({"data_dir": str(data_dir)}))
    with TestClient(create_app(HubConfig.model_validate({"data_dir": str(data_dir)}))) as client:
        yield config_file, client


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(hub_cmd(*args), capture_output=True, text=True, timeout=60)


def sign_in(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def count(config_file: Path, sql: str) -> int:
    data_dir = yaml.safe_load(config_file.read_text())["data_dir"]
    conn = connect(Path(data_dir) / "hub.db")
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


def test_cli_import_then_revoke_appends_versions_and_audits(hub: tuple[Path, TestClient], tmp_path: Path) -> None:
    config_file, _ = hub
    csv_file = tmp_path / "residents.csv"
    csv_file.write_text(GOOD, encoding="utf-8")
    done = run("cards", "import", "--config", str(config_file), str(csv_file))
    assert done.returncode == 0, done.stderr
    assert '"residents": 3' in done.stdout and '"cards": 3' in done.stdout
    assert count(config_file, "SELECT count(*) FROM cards WHERE state = 'active'") == 3
    before = count(config_file, "SELECT max(version) FROM list_changes")
    done = run("cards", "revoke", "--config", str(config_file), "--card", "12/34567")
    assert done.returncode == 0, done.stderr
    assert count(config_file, "SELECT count(*) FROM cards WHERE raw = '12/34567' AND state = 'revoked'") == 1
    assert count(config_file, "SELECT max(version) FROM list_changes") > before
    assert count(config_file, "SELECT count(*) FROM audit WHERE action = 'card.revoked' AND target = 'E001'") == 1
    again = run("cards", "revoke", "--config", str(config_file), "--card", "12/34567")
    assert again.returncode != 0 and "no active or suspended card '12/34567'" in again.stderr


def test_cli_import_of_a_broken_file_names_each_row_and_imports_nothing(
    hub: tuple[Path, TestClient], tmp_path: Path
) -> None:
    config_file, _ = hub
    broken = HEADER + (
        "E001,李伟,Foxconn,b07,301,,12/34567,wiegand26,,\n"
        "E004,,Foxconn,b07,302,,12/4,wiegand26,,\n"  # no name
        "E005,Li,Foxconn,b07,303,,999/4,wiegand26,,\n"  # facility too large for 26 bits
        "E006,Li,Foxconn,b07,304,,12/34567,wiegand26,,\n"  # card already on line 2
        "E007,Li,Foxconn,b07,305,,77,magstripe,,\n"
    )
    csv_file = tmp_path / "broken.csv"
    csv_file.write_text(broken, encoding="utf-8")
    done = run("cards", "import", "--config", str(config_file), str(csv_file))
    assert done.returncode != 0
    assert "nothing imported, 4 problem(s)" in done.stderr
    assert "line 3: name: empty" in done.stderr
    assert "line 4: card_number: facility 999 does not fit wiegand26" in done.stderr
    assert "line 5: card_number: 12/34567 is already on line 2" in done.stderr
    assert "line 6: card_format: 'magstripe'" in done.stderr
    assert count(config_file, "SELECT count(*) FROM residents") == 0
    assert count(config_file, "SELECT count(*) FROM list_changes") == 0


def test_a_dorm_manager_acts_only_on_their_buildings(hub: tuple[Path, TestClient]) -> None:
    _, client = hub
    admin = sign_in(client, "admin")
    assert client.post("/api/v1/cards/import", content=GOOD.encode(), headers=admin).status_code == 200
    dorm = sign_in(client, "dorm7")
    residents = client.get("/api/v1/cards/residents", headers=dorm).json()["items"]
    assert {r["employee_no"] for r in residents} == {"E001", "E003"}  # b07 only; E002 lives in b03
    all_ids = {r["employee_no"]: r for r in client.get("/api/v1/cards/residents", headers=admin).json()["items"]}
    other_card = all_ids["E002"]["cards"][0]["id"]
    # Another building's card is as good as absent; issuing into it is refused.
    assert client.post(f"/api/v1/cards/{other_card}/state", json={"state": "revoked"}, headers=dorm).status_code == 404
    body = {"employee_no": "E009", "name": "Sun", "building": "b03", "card_number": "5/5", "card_format": "wiegand26"}
    assert client.post("/api/v1/cards", json=body, headers=dorm).status_code == 403
    # Moving someone else's resident into b07 is refused too.
    body = {**body, "employee_no": "E002", "building": "b07"}
    assert client.post("/api/v1/cards", json=body, headers=dorm).status_code == 403
    # A CSV row for another building: the whole file refused, the row named.
    refused = client.post("/api/v1/cards/import", content=GOOD.encode(), headers=dorm)
    assert refused.status_code == 422 and "line 3: building: b03 is not yours to manage" in refused.text
    # Police may not manage cards at all.
    assert client.get("/api/v1/cards/residents", headers=sign_in(client, "police1")).status_code == 403


def test_replacing_a_lost_card_stops_the_old_one_and_visitor_passes_expire(hub: tuple[Path, TestClient]) -> None:
    config_file, client = hub
    dorm = sign_in(client, "dorm7")
    body = {
        "employee_no": "E100",
        "name": "陈静",
        "building": "b07",
        "room": "508",
        "card_number": "12/100",
        "card_format": "wiegand26",
    }
    issued = client.post("/api/v1/cards", json=body, headers=dorm)
    assert issued.status_code == 201, issued.text
    old = issued.json()["id"]
    replaced = client.post(
        f"/api/v1/cards/{old}/replace", json={"card_number": "12/101", "card_format": "26"}, headers=dorm
    )
    assert replaced.status_code == 201, replaced.text
    cards = {
        c["number"]: c["state"] for c in client.get("/api/v1/cards/residents", headers=dorm).json()["items"][0]["cards"]
    }
    assert cards == {"12/100": "lost", "12/101": "active"}
    # The lost card cannot be brought back by hand, and its number cannot go to someone else while live.
    assert client.post(f"/api/v1/cards/{old}/state", json={"state": "active"}, headers=dorm).status_code == 409
    taken = {**body, "employee_no": "E101", "card_number": "12/101"}
    answer = client.post("/api/v1/cards", json=taken, headers=dorm)
    assert answer.status_code == 409 and "already belongs to employee E100" in answer.text
    visitor = {**body, "employee_no": "V1", "kind": "visitor", "card_number": "12/200", "max_uses": 2}
    answer = client.post("/api/v1/cards", json=visitor, headers=dorm)
    assert answer.status_code == 422 and "needs valid_until" in answer.text
    assert (
        client.post("/api/v1/cards", json={**visitor, "valid_until": 2_000_000_000.0}, headers=dorm).status_code == 201
    )
    actions = count(
        config_file, "SELECT count(*) FROM audit WHERE action IN ('card.issue', 'card.replace') AND actor = 'dorm7'"
    )
    assert actions == 3


def test_the_cards_page_is_chinese_by_default_and_english_on_request(hub: tuple[Path, TestClient]) -> None:
    _, client = hub
    client.post("/api/v1/auth/login", json={"username": "dorm7", "password": PASSWORD})
    page = client.get("/cards")
    assert page.status_code == 200 and "住户" in page.text and "发卡" in page.text
    assert "Issue a card" in client.get("/cards?lang=en").text


def test_the_access_log_is_searched_and_exported_within_the_managers_buildings(hub: tuple[Path, TestClient]) -> None:
    config_file, client = hub
    data_dir = Path(yaml.safe_load(config_file.read_text())["data_dir"])
    db = HubDB(data_dir / "hub.db")
    now = time.time()

    def swipe(n: int, building: str, name: str) -> Record:
        detail = {"door": f"{building}-east", "building": building, "granted": True, "reason": "granted"}
        detail |= {"card": f"12/{n}", "employee_no": f"E{n:03d}", "name": name, "why": "ok"}
        event = Event(id=new_event_id(now - 100 + n), kind="access", phase="instant", time=now - 100 + n, detail=detail)
        return Record("event", "dorms", f"{building}-gate", now, message=event)

    db.write([swipe(1, "b07", "李伟"), swipe(2, "b07", "=HYPERLINK(1)"), swipe(3, "b03", "Wang")])
    db.close()
    dorm = sign_in(client, "dorm7")
    found = client.get("/api/v1/cards/access-log", params={"employee_no": "E001"}, headers=dorm).json()["items"]
    assert [(r["employee_no"], r["name"], r["granted"]) for r in found] == [("E001", "李伟", True)]
    exported = client.get("/api/v1/cards/access-log.csv", headers=dorm)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows[0][0] == "time_utc" and len(rows) == 3  # b03's swipe is not this manager's
    assert {r[-2] for r in rows[1:]} == {"李伟", "'=HYPERLINK(1)"}  # a formula arrives as text
    assert count(config_file, "SELECT count(*) FROM audit WHERE action = 'access.export' AND actor = 'dorm7'") == 1
    # Not in the alert feed: a swipe is no alert.
    assert client.get("/api/v1/alerts", headers=sign_in(client, "admin")).json()["items"] == []
