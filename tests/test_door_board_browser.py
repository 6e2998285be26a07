"""The door board in a real browser (Debian's Chromium, 390x844) against a real gate: Mosquitto,
`diaolou-hub run` and a gate agent with a simulated door (tests/test_gate_e2e.py's site). The
door is forced open on the box; the board, already open on the phone, turns it red without a
reload; the dorm manager acknowledges the alarm with a note; the door closes and the board says
so; the box goes offline while a card changes, and its out-of-date list stands out until it is
back. Screenshots in both languages go to test-artifacts/screenshots/doors-*.png."""

from __future__ import annotations

import yaml
from playwright.sync_api import Page, expect

from edge_agent.gate.credential import encode_wiegand
from edge_agent.gate.door import SimulatedDoor
from edge_agent.gate.reader import WiegandBits
from edge_agent.gate.simulator import SimulatorReader
from hub.services import accounts, audit, cards
from tests.conftest import REPO, wait_for
from tests.test_gate_e2e import SITE, Site, site

__all__ = ["site"]  # the module-scoped fixture: one broker, hub and gate for this module
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
PASSWORD = "dorm manager pass 7"
EAST = f"{SITE}/b07-gate/b07-east"


def test_a_forced_door_appears_live_on_the_board_and_is_acknowledged(page: Page, site: Site) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    conn = site.hub()
    try:
        accounts.add_user(conn, audit.CLI, "dorm7", PASSWORD, "dorm_manager", buildings=["b07"])
    finally:
        conn.close()
    url = "http://" + yaml.safe_load(site.hub_cfg.read_text())["listen"]
    assert wait_for(lambda: site.version() > 0, timeout=20), "the gate never got its list"
    assert site.agent.doors is not None
    door = site.agent.doors.io["b07-east"]
    assert isinstance(door, SimulatedDoor)

    page.goto(f"{url}/login")
    page.fill("input[name=username]", "dorm7")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    page.goto(f"{url}/doors")
    east = page.locator(f'[data-door="{EAST}"]')
    expect(east).to_have_attribute("data-state", "unknown", timeout=10_000)  # no contact change yet
    expect(page.locator("#alarms")).to_contain_text("没有待处理的告警")

    # A resident swipes at the inner door and walks through: open after a grant, then closed.
    inner_reader, inner = site.agent.doors.readers["b07-inner"], site.agent.doors.io["b07-inner"]
    assert isinstance(inner_reader, SimulatorReader) and isinstance(inner, SimulatedDoor)
    inner_reader.push(WiegandBits(encode_wiegand(26, 12, 3)))
    assert wait_for(lambda: len(inner.pulses) == 1, timeout=10)
    inner.open_door()
    shown = page.locator(f'[data-door="{SITE}/b07-gate/b07-inner"]')
    expect(shown).to_have_attribute("data-state", "open", timeout=10_000)
    expect(shown).to_contain_text("最近刷卡：通过")
    inner.close_door()
    expect(shown).to_have_attribute("data-state", "closed", timeout=10_000)

    door.open_door()  # nobody swiped, nobody pressed exit: forced, on the box
    expect(east).to_have_attribute("data-state", "forced", timeout=10_000)
    expect(east).to_contain_text("强行开门")
    expect(east).to_have_class("door forced alarmed")
    alarm = page.locator("#alarms li.alarm").first
    expect(alarm).to_contain_text("强行开门")
    expect(alarm).to_contain_text("b07-east")
    page.screenshot(path=str(SCREENSHOTS / "doors-forced-zh.png"), full_page=True)

    page.once("dialog", lambda dialog: dialog.accept("宿管到场检查，门锁正常"))
    alarm.locator("button[data-action=ack]").click()
    expect(alarm).to_contain_text("已处理：dorm7")
    expect(alarm).to_contain_text("宿管到场检查，门锁正常")
    expect(east).to_have_class("door forced")  # still open, no longer an unhandled alarm

    door.close_door()
    expect(east).to_have_attribute("data-state", "closed", timeout=10_000)
    expect(east).to_contain_text("已关")
    page.screenshot(path=str(SCREENSHOTS / "doors-zh.png"), full_page=True)

    # The box goes away and a card changes meanwhile: its doors turn grey and its list is behind,
    # by one change since the suspension; back online, it catches up and the warning goes.
    site.agent.shutdown()
    conn = site.hub()
    try:
        card = conn.execute("SELECT id FROM cards WHERE raw = '12/1'").fetchone()[0]
        cards.set_state(conn, audit.CLI, None, card, "suspended")
    finally:
        conn.close()
    stale = page.locator(f'#stale-list [data-gate="{SITE}/b07-gate"]')
    expect(stale).to_contain_text("1 项变更未收到", timeout=10_000)
    expect(stale).to_contain_text("未同步自")
    expect(east).to_have_attribute("data-state", "offline")
    page.screenshot(path=str(SCREENSHOTS / "doors-stale-zh.png"), full_page=True)
    site.restart_agent()
    expect(stale).to_have_count(0, timeout=20_000)
    expect(east).to_have_attribute("data-state", "closed")

    page.goto(f"{url}/doors?lang=en")
    expect(east).to_contain_text("Closed", timeout=10_000)
    expect(page.locator("#alarms")).to_contain_text("Acknowledged by dorm7")
    page.screenshot(path=str(SCREENSHOTS / "doors-en.png"), full_page=True)
    conn = site.hub()
    try:
        assert [r.actor for r in audit.search(conn, action="door_alarm.ack").items] == ["dorm7"]
    finally:
        conn.close()
