"""Who swiped, at the hub: an access record from a door with a camera shows the camera's picture
of that moment (to the dorm managers of that building and admins only, audited like alert
snapshots) and, to those who may watch the camera (admins, and that building's dorm managers once
the admin has named the door's camera), a link to play back from 5 s before; a
tailgating alarm reads as one on the cards page. API through the real app and hub.db, the page
in Debian's Chromium at 390x844 (screenshots test-artifacts/screenshots/access-snapshot-*.png).

The picture is a frame of the real footage, as the gate would have sent it."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import pytest
import uvicorn
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from contract import Event, SnapshotRef, Status
from contract.messages import check_snapshot
from edge_agent.events.ids import new_event_id
from hub.api.app import create_app
from hub.config import HubConfig
from hub.db import HubDB
from hub.records import Record
from hub.services import accounts, audit, cards
from hub.store import connect
from tests.conftest import REPO, SHARED, free_port, wait_for

SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
PASSWORD = "door camera pass 7"
CAMERA = "dorms.b07-gate.gatecam"


def footage_jpeg(at_seconds: float) -> bytes:
    with av.open(str(SHARED / "data" / "video" / "one-by-one-person-detection.mp4")) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= at_seconds:
                image = frame.to_ndarray(format="bgr24", width=640, height=360)
                break
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return check_snapshot(data.tobytes())


class Seeded:
    def __init__(self, data_dir: Path) -> None:
        self.config = HubConfig.model_validate({"data_dir": str(data_dir)})
        db = HubDB(self.config.db_path)
        conn = connect(self.config.db_path)
        accounts.add_user(conn, audit.CLI, "dorm7", PASSWORD, "dorm_manager", buildings=["b07"])
        accounts.add_user(conn, audit.CLI, "dorm3", PASSWORD, "dorm_manager", buildings=["b03"])
        accounts.add_user(conn, audit.CLI, "admin", PASSWORD, "admin")
        # The admin says which camera watches b07's door: b07's managers may then watch it.
        cards.set_door(conn, audit.CLI, "dorms", "b07-gate", "b07-east", "b07", camera="gatecam")
        cards.set_door(conn, audit.CLI, "dorms", "b03-gate", "b03-main", "b03")
        conn.close()
        now = time.time()
        self.swipe_at = now - 300
        self.swipe = self.event(
            "access",
            self.swipe_at,
            granted=True,
            reason="granted",
            why="E001 may enter building b07",
            card="12/100",
            employee_no="E001",
            name="李伟",
        )
        why = "2 persons crossed the door line; cards granted: 1"
        self.tailgate = self.event("door_alarm", now - 280, alarm="tailgating", why=why, grants=1, persons=2)
        self.plain = self.event("access", now - 200, camera=False, granted=False, reason="bad_read", why="parity")
        status = Status(state="online", time=now, cameras=["gatecam"])  # the gate box and its camera
        records = [Record("status", "dorms", "b07-gate", now, message=status)]
        events = (self.swipe, self.tailgate, self.plain)
        records += [Record("event", "dorms", "b07-gate", now, message=e) for e in events]
        records += [
            Record("snapshot", "dorms", "b07-gate", now, name=self.swipe.id, data=footage_jpeg(12.0)),
            Record("snapshot", "dorms", "b07-gate", now, name=self.tailgate.id, data=footage_jpeg(24.0)),
        ]
        db.write(records)
        db.close()

    @staticmethod
    def event(kind: str, at: float, camera: bool = True, **detail: object) -> Event:
        event_id = new_event_id(at)
        return Event(
            id=event_id,
            kind=kind,  # type: ignore[arg-type]
            phase="instant",
            time=at,
            camera="gatecam" if camera else None,
            detail={"door": "b07-east", "building": "b07", **detail},
            snapshot=SnapshotRef(path=f"snapshots/gatecam/day/{event_id}.jpg") if camera else None,
        )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    return Seeded(tmp_path_factory.mktemp("access-snapshots") / "hub")


@pytest.fixture(scope="module")
def client(seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(seeded.config)) as made:
        yield made


def sign_in(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def test_a_dorm_manager_sees_who_swiped_at_their_buildings_doors_only(seeded: Seeded, client: TestClient) -> None:
    dorm7 = sign_in(client, "dorm7")
    items = {r["id"]: r for r in client.get("/api/v1/cards/access-log", headers=dorm7).json()["items"]}
    swipe = items[seeded.swipe.id]
    assert swipe["camera"] == CAMERA
    assert swipe["snapshot"] == f"/api/v1/cards/access-log/{seeded.swipe.id}/snapshot"
    # The door's camera is theirs to watch: play back from 5 s before the swipe.
    assert swipe["playback"] == f"/cameras/{CAMERA}/playback?t={int(seeded.swipe_at - 5)}"
    assert [c["id"] for c in client.get("/api/v1/cameras", headers=dorm7).json()["items"]] == [CAMERA]
    assert items[seeded.plain.id]["snapshot"] is None and items[seeded.plain.id]["camera"] is None
    assert items[seeded.tailgate.id]["alarm"] == "tailgating" and items[seeded.tailgate.id]["snapshot"]
    for size in ("full", "thumb"):
        picture = client.get(swipe["snapshot"], params={"size": size}, headers=dorm7)
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
        assert picture.content.startswith(b"\xff\xd8")
    conn = connect(seeded.config.db_path)
    views = conn.execute(
        "SELECT count(*) FROM audit WHERE action = 'snapshot.view' AND actor = 'dorm7' AND target = ?",
        (seeded.swipe.id,),
    ).fetchone()[0]
    conn.close()
    assert views == 2
    # Another building's manager: not found, exactly as for a record that does not exist.
    dorm3 = sign_in(client, "dorm3")
    assert client.get(swipe["snapshot"], headers=dorm3).status_code == 404
    assert client.get("/api/v1/cameras", headers=dorm3).json()["items"] == []  # b03's door has no camera
    assert client.get(f"/api/v1/cameras/{CAMERA}", headers=dorm3).status_code == 404
    assert client.get("/api/v1/cards/access-log/01ARZ3NDEKTSV4RRFFQ69G5FAV/snapshot", headers=dorm7).status_code == 404
    assert client.get(f"/api/v1/cards/access-log/{seeded.plain.id}/snapshot", headers=dorm7).status_code == 404
    client.cookies.clear()  # signing in left a session cookie
    assert client.get(swipe["snapshot"]).status_code in (401, 403)  # signed out


def test_an_admin_gets_the_play_back_link_five_seconds_before_the_swipe(seeded: Seeded, client: TestClient) -> None:
    admin = sign_in(client, "admin")
    items = {r["id"]: r for r in client.get("/api/v1/cards/access-log", headers=admin).json()["items"]}
    assert items[seeded.swipe.id]["playback"] == f"/cameras/{CAMERA}/playback?t={int(seeded.swipe_at - 5)}"
    assert items[seeded.plain.id]["playback"] is None
    assert client.get(items[seeded.swipe.id]["snapshot"], headers=admin).status_code == 200


@pytest.fixture(scope="module")
def url(seeded: Seeded) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(seeded.config), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_for(lambda: bool(server.started), timeout=20)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def login(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_cards_page_shows_the_picture_and_the_tailgating_alarm(page: Page, url: str, lang: str) -> None:
    login(page, url, "dorm7")
    page.goto(f"{url}/cards?lang={lang}")
    log = page.locator("#access-log")
    pictures = log.locator("a.who img")
    expect(pictures).to_have_count(2)
    for n in range(2):
        expect(pictures.nth(n)).to_have_js_property("complete", True)
        assert pictures.nth(n).evaluate("img => img.naturalWidth") == 320  # the thumbnail, loaded
    expect(log.locator("li.door_alarm .badge.bad")).to_have_text("尾随进入" if lang == "zh" else "Tailgating")
    expect(log.locator("a.play-from")).to_have_count(2)  # the swipe and the alarm, both at the watched door
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log.screenshot(path=str(SCREENSHOTS / f"access-snapshot-{lang}.png"))


def test_an_admin_follows_play_back_from_the_access_log(page: Page, url: str, seeded: Seeded) -> None:
    login(page, url, "admin")
    page.goto(f"{url}/cards?lang=en")
    link = page.locator("#access-log li", has_text="李伟").locator("a.play-from")
    expect(link).to_have_text("▶ Play back from here")
    link.click()
    expect(page).to_have_url(re.compile(re.escape(f"/cameras/{CAMERA}/playback?t={int(seeded.swipe_at - 5)}") + "$"))
    expect(page.locator("#playback")).to_have_attribute("data-camera", CAMERA)
    page.goto("about:blank")  # close the page's playback socket: the server then stops at once
