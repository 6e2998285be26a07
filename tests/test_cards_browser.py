"""The dorm manager's cards page in a real browser (Debian's Chromium, 390x844) against the hub's
real app and hub.db: only their building, issue a card, replace a lost one, revoke, a broken CSV
refused row by row, the access log and the gate boxes. Screenshots in both languages go to
test-artifacts/screenshots/cards-*.png."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from playwright.sync_api import Page, expect

from contract import Event, Heartbeat, Status
from edge_agent.events.ids import new_event_id
from hub.access_sync import latest_version
from hub.api.app import create_app
from hub.config import HubConfig
from hub.db import HubDB
from hub.models import CardIssue
from hub.records import Record
from hub.services import accounts, audit, cards
from hub.store import connect
from tests.conftest import REPO, free_port, wait_for

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
PASSWORD = "dorm manager pass 7"


def seed(config: HubConfig) -> None:
    db = HubDB(config.db_path)
    now = time.time()
    conn = connect(config.db_path)
    accounts.add_user(conn, audit.CLI, "dorm7", PASSWORD, "dorm_manager", buildings=["b07"])
    cards.set_door(conn, audit.CLI, "dorms", "b07-gate", "b07-east", "b07")
    for n, (name, room, building) in enumerate(
        [("李伟", "301", "b07"), ("王芳", "302", "b07"), ("赵磊", "101", "b03")]
    ):
        body = CardIssue(
            employee_no=f"E00{n + 1}",
            name=name,
            company="富士康",
            building=building,
            room=room,
            card_number=f"12/{100 + n}",
            card_format="wiegand26",
        )
        cards.issue(conn, audit.CLI, None, body)
    held = latest_version(conn, ["b07"])  # the gate box holds the newest list
    conn.close()

    def access(at: float, **detail: object) -> Record:
        kind = "door_alarm" if "alarm" in detail else "access"
        event = Event(
            id=new_event_id(at),
            kind=kind,  # type: ignore[arg-type]
            phase="instant",
            time=at,
            detail={"door": "b07-east", "building": "b07", **detail},
        )
        return Record("event", "dorms", "b07-gate", at, message=event)

    db.write(
        [
            Record("status", "dorms", "b07-gate", now, message=Status(state="online", time=now)),
            Record(
                "heartbeat",
                "dorms",
                "b07-gate",
                now,
                message=Heartbeat(time=now, uptime_seconds=5, access_list_version=held),
            ),
            access(
                now - 300,
                granted=True,
                reason="granted",
                why="E001 may enter building b07",
                card="12/100",
                employee_no="E001",
                name="李伟",
            ),
            access(now - 200, granted=False, reason="bad_read", why="Wiegand 26: wrong odd parity over bits 13-25"),
            access(now - 100, alarm="forced_open", why="the door opened without a grant or exit press"),
        ]
    )
    db.close()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = HubConfig.model_validate({"data_dir": str(tmp_path_factory.mktemp("cards-browser") / "hub")})
    seed(config)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_for(lambda: bool(server.started), timeout=20)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_a_dorm_manager_issues_replaces_and_revokes_cards_of_their_building(page: Page, url: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{url}/login")
    page.fill("input[name=username]", "dorm7")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    page.goto(f"{url}/cards")
    expect(page.locator("h1").first).to_have_text("门禁控制器")
    residents = page.locator("#residents li.resident")
    expect(residents).to_have_count(2)  # 赵磊 lives in b03: not this manager's
    expect(page.locator("#residents")).not_to_contain_text("赵磊")
    expect(page.locator("#access-log")).to_contain_text("强行开门")
    expect(page.locator("#gates")).to_contain_text("名单已同步")
    page.screenshot(path=str(SCREENSHOTS / "cards-zh.png"), full_page=True)

    # Issue a card to a new resident.
    form = page.locator("#issue-card")
    form.locator("input[name=employee_no]").fill("E010")
    form.locator("input[name=name]").fill("陈静")
    form.locator("input[name=room]").fill("508")
    form.locator("input[name=card_number]").fill("12/200")
    form.locator("button[type=submit]").click()
    expect(page.locator("#residents [data-employee=E010]")).to_contain_text("12/200")

    # Replace 李伟's lost card: the browser asks for the new number.
    page.once("dialog", lambda dialog: dialog.accept("12/201"))
    page.locator("#residents [data-employee=E001] button[data-action=replace]").click()
    li = page.locator("#residents [data-employee=E001]")
    expect(li).to_contain_text("12/201")
    expect(li.locator("[data-card]", has_text="12/100")).to_contain_text("已挂失")

    # Revoke 王芳's card after confirming.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#residents [data-employee=E002] button[data-action=revoked]").click()
    expect(page.locator("#residents [data-employee=E002]")).to_contain_text("已注销")

    # A CSV with a row for another building: refused, the row named, nothing imported.
    csv = (
        "employee_no,name,company,building,room,phone,card_number,card_format,valid_from,valid_until\n"
        "E020,孙丽,富士康,b07,601,,12/300,wiegand26,,\n"
        "E021,周强,富士康,b03,602,,12/301,wiegand26,,\n"
    )
    page.locator("#import-csv input[type=file]").set_input_files(
        files=[{"name": "residents.csv", "mimeType": "text/csv", "buffer": csv.encode("utf-8")}]
    )
    page.locator("#import-csv button[type=submit]").click()
    expect(page.locator("#import-error")).to_contain_text("line 3: building: b03 is not yours to manage")
    expect(page.locator("#residents [data-employee=E020]")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "cards-actions-zh.png"), full_page=True)
    page.goto(f"{url}/cards?lang=en")
    expect(page.locator("h1").first).to_have_text("Gate boxes")
    expect(page.locator("#access-log")).to_contain_text("Forced open")
    page.screenshot(path=str(SCREENSHOTS / "cards-en.png"), full_page=True)
