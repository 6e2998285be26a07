"""The playback and clips pages in Debian's Chromium at 390x844, against a real `diaolou-hub run`,
Mosquitto and an agent recording a file camera: the 7-day timeline shows what the box recorded
and opens on the moment of an alert; a police user pulls a clip from the clips page, follows its
progress and downloads a package that verifies offline; an admin releases its hold with a reason
(audited, the box lets the window go), a police user is not offered to. Screenshots go to
test-artifacts/screenshots/playback-*.png."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from playwright.sync_api import Page, expect

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.record.segment import Segment
from hub.store import connect
from tests.conftest import wait_for
from tests.support.brokers import Broker
from tests.test_clip_job import agent_config
from tests.test_hub import WAIT, HubProcess, hub_cmd, hub_config, write_config
from tests.test_web_api import PASSWORD, make_hub_data
from tests.test_web_browser import SCREENSHOTS

CAMERA = "lanxi.shop-1.door"


@dataclass
class Stack:
    url: str
    db_path: Path
    agent: Agent
    tmp: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, h264_file: Path) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("playback-ui")
    broker = Broker("mosquitto", tmp / "broker").start()
    config = hub_config(tmp, broker.url(), broker.protocol)
    make_hub_data(config.data_dir)
    hub_file = write_config(tmp, config)
    issued = subprocess.run(
        hub_cmd("devices", "token", "--config", str(hub_file), "--site", "lanxi", "--device", "shop-1"),
        capture_output=True,
        text=True,
    )
    assert issued.returncode == 0, issued.stderr
    token_file = tmp / "hub-token"
    token_file.write_text(issued.stdout)
    token_file.chmod(0o600)
    base = f"http://{config.listen}"
    hub = HubProcess(hub_file, tmp / "hub.log").start()
    agent = Agent(parse_config(agent_config(tmp, broker, base, token_file, h264_file)))
    try:
        assert wait_for(lambda: "web UI and API on" in hub.log_path.read_text(), WAIT)
        agent.start()
        assert agent.link is not None and agent.link.wait_connected(WAIT)
        assert wait_for(lambda: len(agent.index.segments("door", 0, time.time() + 60)) >= 3, WAIT)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield Stack(base, config.db_path, agent, tmp)
    finally:
        agent.shutdown()
        hub.terminate()
        broker.stop()


def sign_in(page: Page, stack: Stack, username: str) -> None:
    page.goto(f"{stack.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{stack.url}/")


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"playback-{name}.png"), full_page=True)


def test_the_timeline_shows_the_recording_and_an_alert_opens_playback_at_its_moment(page: Page, stack: Stack) -> None:
    sign_in(page, stack, "police1")
    page.goto(f"{stack.url}/cameras/{CAMERA}")
    page.click("#open-playback")
    page.wait_for_url(f"{stack.url}/cameras/{CAMERA}/playback")
    expect(page.locator(".track .rec").first).to_be_visible(timeout=WAIT * 1000)
    expect(page.locator("#days button")).to_have_count(7)
    # Zoomed in to minutes: the day is 144 times wider, so a few seconds of recording are visible.
    day = page.locator("#track").bounding_box()
    for _ in range(3):
        page.click("#zoom-in")
    expect(page.locator("#zoom-label")).to_have_text("10min")
    zoomed, rec = page.locator("#track").bounding_box(), page.locator(".track .rec").first.bounding_box()
    assert day is not None and zoomed is not None and rec is not None
    assert zoomed["width"] == pytest.approx(144 * day["width"]) and rec["width"] > 2
    shot(page, "timeline-zh")
    page.goto(f"{stack.url}/cameras/{CAMERA}/playback?lang=en")
    expect(page.locator(".legend")).to_contain_text("Recorded")
    shot(page, "timeline-en")
    page.goto(f"{stack.url}/cameras/{CAMERA}/playback?lang=zh")

    # From an alert, one tap: the page opens on the alert's moment, 10 s before it.
    page.goto(f"{stack.url}/alerts?camera={CAMERA}")
    page.locator(".feed .alert a").first.click()
    link = page.locator("#play-around")
    href = link.get_attribute("href") or ""
    assert href.startswith(f"/cameras/{CAMERA}/") and "/playback?t=" in href
    link.click()
    page.wait_for_url("**/playback?t=*")
    expect(page.locator("#zoom-label")).to_have_text("1h")
    # The shop owner of another shop gets the same 404 as for a camera that does not exist.
    page.context.clear_cookies()
    sign_in(page, stack, "owner2")
    assert page.goto(f"{stack.url}/cameras/{CAMERA}/playback").status == 404


def test_a_police_user_pulls_a_clip_and_an_admin_releases_its_hold(page: Page, stack: Stack) -> None:
    segments = stack.agent.index.segments("door", 0, time.time() + 60)
    start, end = segments[0].start + 0.5, segments[2].end - 0.5
    sign_in(page, stack, "police1")
    page.goto(f"{stack.url}/clips")
    # datetime-local holds the phone's local time: set it the way the page reads it back.
    set_local = "([n, t]) => { const d = new Date(t * 1000); d.setMinutes(d.getMinutes() - d.getTimezoneOffset());"
    set_local += " document.querySelector(`input[name=${n}]`).value = d.toISOString().slice(0, 19); }"
    page.evaluate(set_local, ["start", start])
    page.evaluate(set_local, ["end", end])
    page.fill("input[name=reason]", "案件 2026-311 shop door")
    page.click("#clip-form button[type=submit]")
    expect(page.locator(".clips li .reason").first).to_have_text("案件 2026-311 shop door")
    shot(page, "clips-progress-zh")
    download_link = page.locator(".clips li a.download").first
    expect(download_link).to_be_visible(timeout=60_000)
    expect(page.locator(".clips li button.release")).to_have_count(0)  # not a police user's to release
    shot(page, "clips-ready-zh")
    with page.expect_download() as info:
        download_link.click()
    package = stack.tmp / "from-the-page.zip"
    info.value.save_as(package)
    conn = connect(stack.db_path)
    clip_id = conn.execute("SELECT id FROM clips WHERE reason = ?", ("案件 2026-311 shop door",)).fetchone()["id"]
    conn.close()
    verified = subprocess.run(hub_cmd("verify-evidence", str(package)), capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "lanxi.shop-1.door" in verified.stdout

    # Bad input: end before start, refused with the reason, nothing stored.
    page.evaluate(set_local, ["end", start - 60])
    page.fill("input[name=reason]", "backwards window")
    page.click("#clip-form button[type=submit]")
    expect(page.locator("#clip-error")).to_contain_text("end must be after its start")

    # The admin releases the hold with a reason; the box lets the window go; it is audited.
    page.context.clear_cookies()
    sign_in(page, stack, "admin")
    page.goto(f"{stack.url}/clips?lang=en")
    page.once("dialog", lambda dialog: dialog.accept("case 2026-311 closed by the court"))
    page.locator(f".clips li[data-clip='{clip_id}'] button.release").click()
    expect(page.locator(f".clips li[data-clip='{clip_id}']")).to_contain_text("Hold release requested")
    shot(page, "clips-released-en")
    assert wait_for(lambda: not [h for h in stack.agent.index.holds("door") if clip_id in h.reason], WAIT)
    conn = connect(stack.db_path)
    try:
        rows = conn.execute("SELECT actor, detail FROM audit WHERE action = 'clip.hold_release'").fetchall()
    finally:
        conn.close()
    assert [(r["actor"], json.loads(r["detail"])["reason"]) for r in rows] == [
        ("admin", "case 2026-311 closed by the court")
    ]


FRAME_JS = """async () => {
  const video = document.getElementById("player");
  video.pause();
  if (video.currentTime !== 0) {
    await new Promise((done) => { video.addEventListener("seeked", done, { once: true }); video.currentTime = 0; });
  }
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return canvas.toDataURL("image/png");
}"""


def recorded_gray(stack: Stack, at: float) -> np.ndarray:
    """The recorded frame of the ring buffer nearest to wall time `at`, as gray pixels."""
    segment = next(s for s in stack.agent.index.segments("door", at - 0.01, at + 0.01) if s.start <= at + 0.01)
    with av.open(str(stack.agent.root / segment.path)) as container:
        best = min(
            (
                (abs(segment.start + float(f.time or 0) - at), f.to_ndarray(format="gray"))
                for f in container.decode(video=0)
            ),
            key=lambda pair: pair[0],
        )
    return best[1]


def keyframe_before(stack: Stack, segment: Segment, at: float) -> float:
    """The wall time of the segment's last keyframe at or before `at`, as the recorder wrote it."""
    times, first = [], None
    with av.open(str(stack.agent.root / segment.path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.dts is None:
                continue
            first = packet.dts if first is None else first
            if packet.is_keyframe:
                times.append(segment.start + float((packet.dts - first) * stream.time_base))
    return max(t for t in times if t <= at + 1e-6)


def test_playback_jumps_to_a_chosen_time_and_shows_the_frame_recorded_then(page: Page, stack: Stack) -> None:
    assert wait_for(lambda: len(stack.agent.index.segments("door", 0, time.time() + 60)) >= 4, WAIT)
    segments = stack.agent.index.segments("door", 0, time.time() + 60)
    chosen = segments[1].start + 1.4
    sign_in(page, stack, "police1")
    page.goto(f"{stack.url}/cameras/{CAMERA}/playback?t={chosen}")
    page.wait_for_function(
        "() => { const v = document.getElementById('player'); return v.readyState >= 2 && v.currentTime > 0.2; }",
        timeout=WAIT * 1000,
    )
    shot(page, "playing-zh")
    shown_at = page.evaluate("() => Number(document.getElementById('now-playing').dataset.t || 0)")
    begin = page.evaluate("() => window.diaolouPlayback.from()")
    assert begin == pytest.approx(keyframe_before(stack, segments[1], chosen), abs=0.01)
    assert shown_at >= begin
    data = page.evaluate(FRAME_JS)
    shown = cv2.imdecode(np.frombuffer(base64.b64decode(data.split(",", 1)[1]), np.uint8), cv2.IMREAD_GRAYSCALE)
    then, later = recorded_gray(stack, begin), recorded_gray(stack, begin + 1.0)
    assert shown.shape == then.shape
    # Browser and PyAV decode the same H.264 with slightly different colour conversion: the frame
    # recorded then is a near match, the one a second later is not.
    near, far = np.abs(shown.astype(int) - then).mean(), np.abs(shown.astype(int) - later).mean()
    assert near < 15 and far > 3 * near, (near, far)
    conn = connect(stack.db_path)
    try:
        audited = conn.execute("SELECT actor, detail FROM audit WHERE action = 'playback.view'").fetchall()
    finally:
        conn.close()
    assert ("police1", round(chosen, 3)) in [(a["actor"], json.loads(a["detail"])["start"]) for a in audited]

    # A time with no recording: the box says so, and where the page can go instead.
    page.goto(f"{stack.url}/cameras/{CAMERA}/playback?t={segments[0].start - 3600}")
    expect(page.locator("#status")).to_contain_text("no recording", timeout=WAIT * 1000)
    shot(page, "no-recording-zh")
