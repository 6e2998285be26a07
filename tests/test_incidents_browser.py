"""The grid worker's phone pages in a real browser (Debian's Chromium, 390x844) against a real hub
process: their queue, open an incident, accept the task, a note and a photo, resolve; in Chinese
(the default) and English. Screenshots go to test-artifacts/screenshots/incidents-*.png."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from hub.config import HubConfig
from hub.models import Principal
from hub.services import audit, grids, incidents, intake
from hub.store import connect
from tests.conftest import REPO, free_port, wait_for
from tests.test_figures import load as load_figures_fixture
from tests.test_incident_intake import add_alerts
from tests.test_web_api import PASSWORD, make_hub_data, ulid

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
ADMIN = Principal(user_id=1, username="admin", role="admin", locale="zh")


@pytest.fixture(scope="module")
def hub_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The hub's URL and its hub.db (a test sets a deadline in the past there)."""
    work = tmp_path_factory.mktemp("incidents-browser")
    make_hub_data(work / "hub")
    add_alerts(work / "hub", [(40, "shop-1", "till")])  # a second alert of shop-1's till: the raise joins
    config = HubConfig.model_validate({"data_dir": str(work / "hub")})
    conn = connect(config.db_path)
    square = [[112.0, 22.0], [112.1, 22.0], [112.1, 22.1], [112.0, 22.1], [112.0, 22.0]]
    grid = grids.Grid(code="LX-01", name="兰溪一", civil_code="440781", polygons=[[[(x, y) for x, y in square]]])
    grids.import_grids(conn, audit.CLI, [grid])
    grids.place(conn, audit.CLI, "lanxi.shop-1", lon=112.05, lat=22.05)
    grids.assign_worker(conn, audit.CLI, "grid1", "LX-01")
    n = intake.raise_by_hand(conn, ADMIN, audit.CLI, ulid(0), "intrusion", "high", "夜间有人进入店铺").incident_id
    for action in ("accept", "dispatch"):
        incidents.transition(conn, ADMIN, audit.CLI, n, action)
    load_figures_fixture(conn)  # grids A and B with hand-computed figures (tests/test_figures.py)
    conn.close()
    port, mqtt_port = free_port(), free_port()
    config_file = work / "hub.yaml"
    init = subprocess.run(
        [sys.executable, "-m", "hub", "config", "init", "--data", str(work / "hub"), "--listen", f"127.0.0.1:{port}",
         "--mqtt", f"mqtt://127.0.0.1:{mqtt_port}", "--embedded-broker"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    config_file.write_text(init.stdout)
    log = work / "hub.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "run", "--config", str(config_file)], stdout=out, stderr=out
        )
    assert wait_for(lambda: "web UI and API on" in log.read_text(), 60), log.read_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield f"http://127.0.0.1:{port}", config.db_path
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def hub_url(hub_site: tuple[str, Path]) -> str:
    return hub_site[0]


def _photo(path: Path) -> Path:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (40, 120, 200)).save(out, "JPEG")
    path.write_bytes(out.getvalue())
    return path


def test_grid_worker_takes_and_resolves_from_the_phone(page: Page, hub_url: str, tmp_path: Path) -> None:
    page.goto(f"{hub_url}/login")
    page.fill("input[name=username]", "grid1")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{hub_url}/")
    page.click("nav.tabs a[href='/incidents']")
    expect(page.locator("h1").first).to_contain_text("我的任务")
    item = page.locator("#incidents li.incident").first
    expect(item).to_contain_text("已派遣")
    page.screenshot(path=str(SCREENSHOTS / "incidents-queue-zh.png"), full_page=True)
    item.locator("a").click()
    expect(page.locator("#status")).to_have_text("已派遣")
    # A grid worker is offered only their own step.
    offered = page.locator("#step-form button[data-action]")
    assert [offered.nth(i).get_attribute("data-action") for i in range(offered.count())] == ["start", "note"]
    page.click("button[data-action=start]")
    expect(page.locator("#status")).to_have_text("处置中")
    page.fill("textarea[name=note]", "已联系店主，门已锁好")
    page.set_input_files("input[name=photo]", str(_photo(tmp_path / "door.jpg")))
    page.click("button[data-action=resolve]")
    expect(page.locator("#status")).to_have_text("已处置")
    expect(page.locator("#history li")).to_have_count(5)
    expect(page.locator("#history li").last).to_contain_text("已联系店主")
    expect(page.locator("#history li").last.locator("img.thumb")).to_have_count(1)
    expect(page.locator("#step-form")).to_contain_text("添加备注")
    # The alert's snapshot is evidence the worker sees, though the camera itself is not theirs.
    evidence = page.locator("#incident img.thumb")
    expect(evidence).to_have_count(1)
    assert evidence.evaluate("img => img.complete && img.naturalWidth") == 640
    page.screenshot(path=str(SCREENSHOTS / "incidents-detail-zh.png"), full_page=True)
    page.goto(page.url + "?lang=en")
    expect(page.locator("#status")).to_have_text("Resolved")
    page.screenshot(path=str(SCREENSHOTS / "incidents-detail-en.png"), full_page=True)
    page.goto(f"{hub_url}/incidents")
    expect(page.locator("h1").first).to_contain_text("My queue")
    page.screenshot(path=str(SCREENSHOTS / "incidents-queue-en.png"), full_page=True)


def test_the_centres_figures_chart_and_table(page: Page, hub_url: str) -> None:
    page.goto(f"{hub_url}/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{hub_url}/")
    page.goto(f"{hub_url}/incidents")
    page.click("#figures-link")
    page.goto(f"{hub_url}/incidents/figures?by=grid&days=3660")
    expect(page.locator("#chart")).to_have_attribute("data-ready", "1")
    assert page.locator("#chart canvas").count() >= 1
    rows = page.locator("#figures tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("75.0%")  # grid A: 3 of 4 due closed (hand-computed)
    expect(rows.nth(1)).to_contain_text("100.0%")  # grid B: both on time
    expect(page.locator("h1").first).to_contain_text("统计")
    page.screenshot(path=str(SCREENSHOTS / "incidents-figures-zh.png"), full_page=True)
    page.goto(f"{hub_url}/incidents/figures?by=category&days=3660&lang=en")
    expect(page.locator("#chart")).to_have_attribute("data-ready", "1")
    expect(page.locator("#figures thead")).to_contain_text("Closure rate")
    page.screenshot(path=str(SCREENSHOTS / "incidents-figures-en.png"), full_page=True)


def test_police_console_gets_escalations_live_and_acknowledges(page: Page, hub_url: str) -> None:
    import httpx

    page.goto(f"{hub_url}/login")
    page.fill("input[name=username]", "police1")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{hub_url}/")
    page.click("nav.tabs a[href='/police']")
    expect(page.locator("#live-state")).to_have_text("●")  # the stream is open
    expect(page.locator("#police-list li[data-id]")).to_have_count(0)
    login = httpx.post(f"{hub_url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).json()
    admin = {"Authorization": f"Bearer {login['token']}"}
    escalated = httpx.post(f"{hub_url}/api/v1/incidents/1/police/escalate", json={"note": "x"}, headers=admin)
    assert escalated.status_code == 200, escalated.text
    item = page.locator("#police-list li[data-id='1']")
    expect(item.locator(".police-state")).to_have_text("待接警")  # arrived over SSE, no reload
    expect(item.locator("a.button")).to_have_count(2)
    assert item.locator("a.button").nth(0).get_attribute("href") == "/cameras/lanxi.shop-1.door/live"
    assert "/cameras/lanxi.shop-1.door/playback?t=" in (item.locator("a.button").nth(1).get_attribute("href") or "")
    item.locator("button[data-step=acknowledge]").click()
    expect(item.locator(".police-state")).to_have_text("已接警")
    expect(item.locator(".police-state")).to_have_attribute("data-state", "acknowledged")
    expect(item.locator("button[data-step=dispatch]")).to_have_text("出警")
    page.screenshot(path=str(SCREENSHOTS / "police-console-zh.png"), full_page=True)
    history = httpx.get(f"{hub_url}/api/v1/incidents/1", headers=admin).json()["history"]
    assert [e["action"] for e in history[-2:]] == ["police.escalate", "police.acknowledge"]
    assert history[-1]["actor"] == "police1"


def _sign_in(page: Page, hub_url: str, username: str) -> None:
    page.goto(f"{hub_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{hub_url}/")


# Runs after the tests above (the figures' hand-computed rows, the console's empty start).
def test_raise_from_the_alert_page_then_overdue_badges_in_list_and_console(
    page: Page, hub_site: tuple[str, Path], browser: Any
) -> None:
    hub_url, db_path = hub_site
    _sign_in(page, hub_url, "admin")
    page.goto(f"{hub_url}/alerts/{ulid(3)}")
    form = page.locator("#raise-form")
    expect(form.locator("select[name=category]")).to_have_value("intrusion")  # suggested for a person
    form.locator("select[name=priority]").select_option("high")
    form.locator("textarea[name=note]").fill("收银台附近有人")
    page.screenshot(path=str(SCREENSHOTS / "alert-raise-zh.png"), full_page=True)
    form.locator("#raise-button").click()
    page.wait_for_url(re.compile(r"/incidents/\d+\?raised=new$"))
    expect(page.locator("#raised")).to_have_text("已上报为新事件。")
    raised = int(page.url.split("/incidents/")[1].split("?")[0])
    # The till's next alert, in English: the open incident of the same place and category takes it.
    page.goto(f"{hub_url}/alerts/{ulid(40)}?lang=en")
    expect(page.locator("#raise h2")).to_have_text("Raise an incident")
    page.locator("#raise-button").click()
    page.wait_for_url(f"{hub_url}/incidents/{raised}?raised=attached")
    expect(page.locator("#raised")).to_contain_text("joined it, no new one was opened")
    expect(page.locator("#history li").last).to_contain_text("Alert attached")
    expect(page.locator("#incident img.thumb")).to_have_count(1)  # the second alert has no snapshot: no broken image
    page.screenshot(path=str(SCREENSHOTS / "alert-raise-attached-en.png"), full_page=True)
    page.goto(f"{hub_url}/alerts/{ulid(40)}")
    expect(page.locator("#on-incident")).to_have_text(f"On incident #{raised}")
    # Dispatched five hours ago: an intrusion (high) is due in 4 h, so one hour overdue.
    conn = connect(db_path)
    for action in ("accept", "dispatch"):
        incidents.transition(conn, ADMIN, audit.CLI, raised, action, now=time.time() - 5 * 3600)
    conn.close()
    page.goto(f"{hub_url}/incidents?lang=en")
    late = page.locator(f"#incidents li.incident.overdue:has(a[href='/incidents/{raised}'])")
    expect(late.locator(".overdue-badge")).to_have_text(re.compile(r"^1 h [0-9]+ min overdue$"))
    page.check("#overdue-only")
    page.click(".filters button[type=submit]")
    expect(late).to_have_count(1)  # every item left is overdue (the figures' data has some too)
    shown = page.locator("#incidents li.incident")
    assert shown.count() == page.locator("#incidents li.incident.overdue .overdue-badge").count() >= 1
    page.screenshot(path=str(SCREENSHOTS / "incidents-overdue-en.png"), full_page=True)
    page.goto(f"{hub_url}/incidents?overdue=1&lang=zh")
    expect(late.locator(".overdue-badge")).to_have_text(re.compile(r"^超期 1小时 [0-9]+分钟$"))
    page.screenshot(path=str(SCREENSHOTS / "incidents-overdue-zh.png"), full_page=True)
    import httpx

    login = httpx.post(f"{hub_url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).json()
    escalated = httpx.post(f"{hub_url}/api/v1/incidents/{raised}/police/escalate", json={"note": ""},
                           headers={"Authorization": f"Bearer {login['token']}"})  # fmt: skip
    assert escalated.status_code == 200, escalated.text
    police = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
    _sign_in(police, hub_url, "police1")
    police.goto(f"{hub_url}/police")
    item = police.locator(f"#police-list li[data-id='{raised}']")
    expect(item.locator(".overdue-badge")).to_have_text(re.compile(r"^超期 1小时 [0-9]+分钟$"))
    police.screenshot(path=str(SCREENSHOTS / "police-overdue-zh.png"), full_page=True)
    police.goto(f"{hub_url}/police?lang=en")
    expect(item.locator(".overdue-badge")).to_have_text(re.compile(r"^1 h [0-9]+ min overdue$"))
    police.screenshot(path=str(SCREENSHOTS / "police-overdue-en.png"), full_page=True)
    police.close()
