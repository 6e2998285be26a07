"""Live view end to end in a real browser (Debian's Chromium at 390x844): a real hub process,
Mosquitto, the agent as its own process reading a real RTSP camera (tests/support/rtsp_server.py:
main stream = the people footage, sub stream = H.264 with the frame number burnt in).

A police user taps "watch live" on an alert and the sub stream plays through MSE (currentTime
advances, two screenshots a second apart differ); leaving the page stops the stream at the box;
a browser without MSE gets refreshed JPEGs; a shop owner cannot open another owner's camera.
Screenshots: test-artifacts/screenshots/live-*.png.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from hub.store import connect
from tests.conftest import REPO, SHARED_VIDEO, RtspServer, agent_cmd, wait_for
from tests.support.brokers import Broker
from tests.test_hub import WAIT, HubProcess, hub_cmd, hub_config, write_config
from tests.test_web_api import PASSWORD, make_hub_data

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CAMERA = "lanxi.shop-1.door"


@dataclass
class Site:
    url: str
    db: Path
    agent_log: Path


def media_log(site: Site) -> tuple[int, int]:
    """(streams the agent started, streams it stopped), from its log."""
    text = site.agent_log.read_text(errors="replace")
    return text.count("of camera door"), text.count(": stopped after")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, h264_file: Path) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("live")
    broker = Broker("mosquitto", work / "broker").start()
    camera = RtspServer({"/main": SHARED_VIDEO / "one-by-one-person-detection.mp4", "/sub": h264_file}).start()
    config = hub_config(work, broker.url(), broker.protocol)
    make_hub_data(config.data_dir)  # owner1: lanxi.shop-1.door; owner2: lanxi.shop-2.door; police1: lanxi
    hub_file = write_config(work, config)
    token = subprocess.run(
        hub_cmd("devices", "token", "--config", str(hub_file), "--site", "lanxi", "--device", "shop-1"),
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (work / "hub-token").write_text(token)
    (work / "hub-token").chmod(0o600)
    hub = HubProcess(hub_file, work / "hub.log").start()
    url = f"http://{config.listen}"
    assert wait_for(lambda: "web UI and API on" in hub.log_path.read_text(), WAIT)
    agent_file = work / "agent.yaml"
    agent_file.write_text(
        f"site: lanxi\ndevice: shop-1\nstorage: {{root: {work / 'rec'}}}\n"
        f"mqtt: {{url: '{broker.url()}', protocol: {broker.protocol}, heartbeat_seconds: 1}}\n"
        f"hub: {{url: '{url}', token_file: '{work / 'hub-token'}'}}\n"
        f"cameras:\n  door: {{source: '{camera.url('/main')}', detect_source: '{camera.url('/sub')}', "
        "detect: {enabled: false}, record: {enabled: false}}\n"
    )
    log = work / "agent.log"
    with log.open("ab") as out:
        agent = subprocess.Popen(agent_cmd("run", "--config", str(agent_file)), stdout=out, stderr=out, cwd=REPO)
    state = Site(url, config.db_path, log)
    try:
        assert wait_for(lambda: "connected" in log.read_text(errors="replace"), WAIT), log.read_text()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield state
    finally:
        agent.terminate()
        agent.wait(WAIT)
        hub.terminate()
        camera.stop()
        broker.stop()


def sign_in(page: Page, site: Site, username: str) -> None:
    page.goto(f"{site.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/")


def playing_time(page: Page) -> float:
    return float(page.eval_on_selector("#live-video", "v => v.currentTime"))


def until(page: Page, selector: str, function: str, timeout: float = WAIT) -> None:
    """Poll `function(element)` until truthy (the page's CSP forbids wait_for_function's eval)."""
    assert wait_for(lambda: bool(page.eval_on_selector(selector, function)), timeout, 0.1), function


def test_police_tap_live_from_an_alert_it_plays_and_stops_when_they_leave(page: Page, site: Site) -> None:
    sign_in(page, site, "police1")
    page.goto(f"{site.url}/alerts?camera={CAMERA}")
    page.locator("ul.feed a").first.click()
    page.screenshot(path=str(SCREENSHOTS / "live-from-alert-zh.png"), full_page=True)
    page.locator("#watch-live").click()  # one tap from the alert
    page.wait_for_url(f"{site.url}/cameras/{CAMERA}/live")
    until(page, "#live-video", "v => v.currentTime > 1")
    first_time = playing_time(page)
    first = page.locator(".player").screenshot(path=str(SCREENSHOTS / "live-playing-1.png"))
    until(page, "#live-video", f"v => v.currentTime > {first_time + 1}", 10)
    second = page.locator(".player").screenshot(path=str(SCREENSHOTS / "live-playing-2.png"))
    assert first != second  # the burnt-in frame number moved on
    page.screenshot(path=str(SCREENSHOTS / "live-zh.png"), full_page=True)
    expect(page.locator("#live-mode")).to_have_text("MSE")
    lag = page.eval_on_selector("#live-video", "v => v.buffered.end(v.buffered.length - 1) - v.currentTime")
    assert lag < 2.0  # kept at the live edge, not drifting behind
    conn = connect(site.db)
    views = conn.execute("SELECT actor, target, detail FROM audit WHERE action = 'live.view'").fetchall()
    conn.close()
    assert [(v["actor"], v["target"]) for v in views] == [("police1", CAMERA)] and "sub" in views[0]["detail"]

    started, stopped = media_log(site)
    assert started == 1 and stopped == 0
    page.goto(f"{site.url}/")  # the viewer leaves
    assert wait_for(lambda: media_log(site)[1] == 1, 20), site.agent_log.read_text()
    page.goto(f"{site.url}/cameras/{CAMERA}/live?lang=en")  # the English page plays too, on a new session
    until(page, "#live-video", "v => v.currentTime > 0.5")
    page.screenshot(path=str(SCREENSHOTS / "live-en.png"), full_page=True)
    expect(page.locator("a.button.on")).to_contain_text("Smooth")
    page.get_by_text("HD (main stream)").click()  # the main stream on request: the people footage
    page.wait_for_url(f"{site.url}/cameras/{CAMERA}/live?stream=main")
    until(page, "#live-video", "v => v.currentTime > 0.5")
    assert page.eval_on_selector("#live-video", "v => v.videoWidth") > 640  # not the 640x360 sub stream
    page.screenshot(path=str(SCREENSHOTS / "live-main-en.png"), full_page=True)
    page.close()
    assert wait_for(lambda: media_log(site) == (3, 3), 20)
    conn = connect(site.db)
    streams = [r[0] for r in conn.execute("SELECT detail FROM audit WHERE action = 'live.view' ORDER BY id")]
    conn.close()
    assert ['"main"' in d for d in streams] == [False, False, True]


def test_without_mse_the_page_refreshes_jpegs(page: Page, site: Site) -> None:
    sign_in(page, site, "owner1")
    page.screenshot(path=str(SCREENSHOTS / "live-grid-zh.png"), full_page=True)
    page.locator(f"li[data-camera='{CAMERA}'] a.live-link").click()  # from the camera grid
    page.wait_for_url(f"{site.url}/cameras/{CAMERA}/live")
    page.goto(f"{site.url}/cameras/{CAMERA}/live?fallback=jpeg")
    until(page, "#live-jpeg", "i => i.naturalWidth > 0")
    src = page.eval_on_selector("#live-jpeg", "i => i.src")
    until(page, "#live-jpeg", f"i => i.src !== '{src}'", 10)
    expect(page.locator("#live-video")).to_be_hidden()
    page.screenshot(path=str(SCREENSHOTS / "live-jpeg-zh.png"), full_page=True)


# An iPhone's browser: ManagedMediaSource and no MediaSource. It pauses appending now and then to
# save power (endstreaming) and asks for more later (startstreaming): once here, for 6 s, longer
# than the burst of video a camera sends when a stream opens.
MANAGED_ONLY = """(() => {
  const Native = window.MediaSource;
  class Managed extends Native {
    constructor() {
      super();
      window.managedSources = (window.managedSources || 0) + 1;
      setTimeout(() => this.dispatchEvent(new Event("endstreaming")), 300);
      setTimeout(() => this.dispatchEvent(new Event("startstreaming")), 6300);
    }
  }
  window.ManagedMediaSource = Managed;
  window.MediaSource = undefined;
})();"""


def test_an_iphone_plays_through_managed_media_source(page: Page, site: Site) -> None:
    page.add_init_script(MANAGED_ONLY)
    sign_in(page, site, "owner1")
    page.goto(f"{site.url}/cameras/{CAMERA}/live")
    expect(page.locator("#live-mode")).to_have_text("MMS")
    until(page, "#live-video", "v => v.currentTime > 9", 30)  # appending went on after the pause
    assert page.evaluate("window.managedSources") == 1
    assert page.eval_on_selector("#live-video", "v => v.disableRemotePlayback") is True
    expect(page.locator("#live-video")).to_be_visible()


def test_a_shop_owner_cannot_watch_another_owners_camera(page: Page, site: Site) -> None:
    sign_in(page, site, "owner2")
    response = page.goto(f"{site.url}/cameras/{CAMERA}/live")
    assert response is not None and response.status == 404
    page.screenshot(path=str(SCREENSHOTS / "live-not-yours-zh.png"), full_page=True)
    conn = connect(site.db)
    views = conn.execute("SELECT count(*) FROM audit WHERE action = 'live.view' AND actor = 'owner2'").fetchone()[0]
    conn.close()
    assert views == 0
