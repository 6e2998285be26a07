"""The hub's HTTP API and pages against a real hub.db: sign-in, roles, object-level 404s, CSRF,
rate limit and lock-out, the audit chain, security headers, and an authorisation matrix built
from the app's own routes (a route added without a rule fails here).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image

from contract import Event, Heartbeat, Status
from hub.api.app import create_app, route_policies
from hub.config import HubConfig
from hub.db import HubDB
from hub.models import ROLES
from hub.records import Record
from hub.services import accounts, audit, clips
from hub.store import connect
from tests.test_hub import hub_cmd

PASSWORD = "correct horse battery"


def _jpeg() -> bytes:
    """A real 640x360 JPEG, as an agent's snapshot is."""
    out = io.BytesIO()
    Image.effect_noise((640, 360), 40).convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


JPEG = _jpeg()


def ulid(n: int) -> str:
    return f"01JA2B3C4D5E6F7G8H9J0K{n:04d}"


def make_hub_data(data_dir: Path) -> None:
    """Three boxes, four cameras, an alert with a snapshot on each, and one user per role."""
    config = HubConfig.model_validate({"data_dir": str(data_dir)})
    db = HubDB(config.db_path)
    now = time.time()
    records = [
        Record("status", "lanxi", "shop-1", now, message=Status(state="online", time=now, cameras=["door", "till"])),
        Record("status", "lanxi", "shop-2", now, message=Status(state="online", time=now, cameras=["door"])),
        Record("status", "dongcun", "lane-1", now, message=Status(state="offline", time=now, cameras=["lane"])),
        Record("heartbeat", "lanxi", "shop-1", now, message=Heartbeat(time=now, uptime_seconds=5, cpu_percent=12.5)),
    ]
    cameras = [("lanxi", "shop-1", "door"), ("lanxi", "shop-2", "door"), ("dongcun", "lane-1", "lane")]
    for n, (site, device, camera) in enumerate([*cameras, ("lanxi", "shop-1", "till")]):
        detail = {"zone": "front", "max_score": 0.9}
        ev = Event(id=ulid(n), kind="person", phase="new", camera=camera, time=now - 100 + n, detail=detail)
        records.append(Record("event", site, device, now, message=ev))
        records.append(Record("snapshot", site, device, now, name=ev.id, data=JPEG))
    db.write(records)
    db.close()
    conn = connect(config.db_path)
    accounts.add_user(conn, audit.CLI, "admin", PASSWORD, "admin")
    accounts.add_user(conn, audit.CLI, "owner1", PASSWORD, "shop_owner", cameras=["lanxi.shop-1.door"])
    accounts.add_user(conn, audit.CLI, "owner2", PASSWORD, "shop_owner", cameras=["lanxi.shop-2.door"])
    accounts.add_user(conn, audit.CLI, "police1", PASSWORD, "police", sites=["lanxi"])
    accounts.add_user(conn, audit.CLI, "dorm1", PASSWORD, "dorm_manager")
    accounts.add_user(conn, audit.CLI, "grid1", PASSWORD, "grid_worker")
    conn.close()


@pytest.fixture(scope="module")
def hub_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made once: Argon2 is slow on purpose, so six accounts take seconds."""
    data_dir = tmp_path_factory.mktemp("hub-template") / "hub"
    make_hub_data(data_dir)
    return data_dir


@pytest.fixture
def hub(hub_template: Path, tmp_path: Path) -> Iterator[tuple[HubConfig, TestClient]]:
    shutil.copytree(hub_template, tmp_path / "hub")
    limits = {"login_max_failures_per_account": 3, "login_max_failures_per_address": 6}
    config = HubConfig.model_validate({"data_dir": str(tmp_path / "hub"), "web": limits})
    with TestClient(create_app(config)) as client:
        yield config, client


def sign_in(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


USERS_BY_ROLE = {
    "admin": "admin",
    "shop_owner": "owner1",
    "police": "police1",
    "dorm_manager": "dorm1",
    "grid_worker": "grid1",
}


def test_without_credentials_every_api_route_but_login_answers_401(hub: tuple[HubConfig, TestClient]) -> None:
    _, client = hub
    checked = 0
    for method, route_path in route_policies():
        if not route_path.startswith("/api/v1/"):
            continue
        response = client.request(method, re.sub(r"\{[^}]+\}", "x", route_path))
        if route_path == "/api/v1/auth/login":
            assert response.status_code == 422  # no body: told what is missing
        else:
            assert response.status_code == 401, (method, route_path, response.text)
        checked += 1
    assert checked >= 15
    # Everything the OpenAPI describes is a route the matrix knows.
    described = {(m.upper(), p) for p, ops in client.get("/openapi.json").json()["paths"].items() for m in ops}
    assert described <= set(route_policies())


def test_every_route_declares_a_policy_and_the_matrix_holds(hub: tuple[HubConfig, TestClient]) -> None:
    """For each route and role: a role outside the route's policy gets 403 (401 without a
    sign-in); a role inside it does not. Built from the app, so a new route is covered."""
    config, client = hub
    policies = route_policies()
    assert policies and all(p is not None for p in policies.values())
    tokens = {role: sign_in(client, user) for role, user in USERS_BY_ROLE.items()}
    conn = connect(config.db_path)
    box = {"Authorization": f"Bearer {clips.issue_device_token(conn, audit.CLI, 'lanxi', 'shop-1')}"}
    conn.close()
    for (method, path), policy in policies.items():
        if policy.public or path.endswith("/stream"):
            continue
        url = re.sub(r"\{[^}]+\}", "nobody-here", path)
        if policy.device:  # a box's route: its device token passes, every person gets 403 below
            assert client.request(method, url, headers=box).status_code not in (401, 403), (method, path)
        for role in ROLES:
            response = client.request(method, url, headers=tokens[role], json={} if method == "POST" else None)
            allowed = policy.roles is None or role in policy.roles
            if allowed:
                assert response.status_code != 403, (method, path, role, response.text)
            else:
                assert response.status_code == 403, (method, path, role, response.status_code)
            if "logout" in path:  # that call revoked the token: sign in again for the next routes
                tokens[role] = sign_in(client, USERS_BY_ROLE[role])


def test_login_sets_a_hardened_cookie_and_returns_a_token(hub: tuple[HubConfig, TestClient]) -> None:
    _, client = hub
    response = client.post("/api/v1/auth/login", json={"username": "owner1", "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert "diaolou_session=dls_" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here; Secure when web.tls_cert_file is set
    body = response.json()
    assert body["token"].startswith("dlb_") and body["user"]["username"] == "owner1"
    assert client.get("/api/v1/auth/me").json()["role"] == "shop_owner"  # the cookie works


def test_a_shop_owner_sees_only_their_cameras_and_alerts(hub: tuple[HubConfig, TestClient]) -> None:
    _, client = hub
    headers = sign_in(client, "owner1")
    cameras = client.get("/api/v1/cameras", headers=headers).json()["items"]
    assert [c["id"] for c in cameras] == ["lanxi.shop-1.door"]
    assert cameras[0]["online"] is True and cameras[0]["last_alert"]["id"] == ulid(0)
    assert client.get("/api/v1/cameras/lanxi.shop-1.door", headers=headers).status_code == 200
    for other in ("lanxi.shop-2.door", "lanxi.shop-1.till", "no.such.camera", "../../etc", "x" * 300):
        response = client.get(f"/api/v1/cameras/{other}", headers=headers)
        assert response.status_code == 404, other
    alerts = client.get("/api/v1/alerts", headers=headers).json()["items"]
    assert [a["id"] for a in alerts] == [ulid(0)]
    assert client.get(f"/api/v1/alerts/{ulid(1)}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/alerts/{ulid(1)}/snapshot", headers=headers).status_code == 404
    snap = client.get(f"/api/v1/alerts/{ulid(0)}/snapshot", headers=headers)
    assert snap.status_code == 200 and snap.content == JPEG
    thumb = client.get(f"/api/v1/alerts/{ulid(0)}/snapshot?size=thumb", headers=headers)
    assert thumb.status_code == 200 and len(thumb.content) < len(JPEG) / 3
    assert Image.open(io.BytesIO(thumb.content)).size == (320, 180)
    assert client.get(f"/api/v1/alerts/{ulid(1)}/snapshot?size=thumb", headers=headers).status_code == 404


def test_police_see_their_sites_admins_everything_others_nothing(hub: tuple[HubConfig, TestClient]) -> None:
    _, client = hub

    def camera_ids(user: str) -> list[str]:
        return sorted(c["id"] for c in client.get("/api/v1/cameras", headers=sign_in(client, user)).json()["items"])

    assert camera_ids("police1") == ["lanxi.shop-1.door", "lanxi.shop-1.till", "lanxi.shop-2.door"]
    assert camera_ids("admin") == ["dongcun.lane-1.lane", *camera_ids("police1")]
    assert camera_ids("dorm1") == [] and camera_ids("grid1") == []
    feed = client.get("/api/v1/alerts", headers=sign_in(client, "police1")).json()["items"]
    assert [a["id"] for a in feed] == [ulid(3), ulid(1), ulid(0)]  # newest first, lanxi only


def test_feed_filters_and_pages(hub: tuple[HubConfig, TestClient]) -> None:
    _, client = hub
    headers = sign_in(client, "admin")
    first = client.get("/api/v1/alerts?limit=2", headers=headers).json()
    assert [a["id"] for a in first["items"]] == [ulid(3), ulid(2)]
    second = client.get(f"/api/v1/alerts?limit=2&before={first['next']}", headers=headers).json()
    assert [a["id"] for a in second["items"]] == [ulid(1), ulid(0)] and second["next"] is None
    only = client.get("/api/v1/alerts?camera=lanxi.shop-2.door", headers=headers).json()["items"]
    assert [a["id"] for a in only] == [ulid(1)]
    assert client.get("/api/v1/alerts?zone=back", headers=headers).json()["items"] == []
    assert client.get("/api/v1/alerts?before=garbage", headers=headers).status_code == 422


def test_cookie_requests_that_change_something_need_the_csrf_token(hub: tuple[HubConfig, TestClient]) -> None:
    _, client = hub
    client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    body = {"username": "new1", "password": PASSWORD, "role": "police", "sites": ["lanxi"]}
    refused = client.post("/api/v1/users", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    wrong = client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": "dlc_guess"})
    assert wrong.status_code == 403
    token = client.get("/api/v1/auth/csrf").json()["csrf"]
    assert client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": token}).status_code == 201


def test_sign_out_and_sign_out_everywhere_revoke(hub: tuple[HubConfig, TestClient]) -> None:
    _, client = hub
    phone = sign_in(client, "owner1")
    laptop = sign_in(client, "owner1")
    assert client.post("/api/v1/auth/logout", headers=phone).status_code == 204
    assert client.get("/api/v1/cameras", headers=phone).status_code == 401
    assert client.get("/api/v1/cameras", headers=laptop).status_code == 200
    assert client.post("/api/v1/auth/logout-everywhere", headers=laptop).status_code == 204
    assert client.get("/api/v1/cameras", headers=laptop).status_code == 401


def test_repeated_failures_lock_the_account_until_an_admin_unlocks_it(hub: tuple[HubConfig, TestClient]) -> None:
    _, client = hub
    for _ in range(3):
        assert (
            client.post("/api/v1/auth/login", json={"username": "owner2", "password": "wrong guess"}).status_code == 401
        )
    locked = client.post("/api/v1/auth/login", json={"username": "owner2", "password": PASSWORD})
    assert locked.status_code == 423 and "locked" in locked.json()["detail"]
    admin = sign_in(client, "admin")
    users = {u["username"]: u for u in client.get("/api/v1/users", headers=admin).json()["items"]}
    assert users["owner2"]["locked"] is True
    assert client.post("/api/v1/users/owner2/unlock", headers=admin).status_code == 204
    assert client.post("/api/v1/auth/login", json={"username": "owner2", "password": PASSWORD}).status_code == 200


def test_one_address_guessing_names_is_throttled(hub: tuple[HubConfig, TestClient]) -> None:
    _, client = hub
    codes = [
        client.post("/api/v1/auth/login", json={"username": f"guess{i}", "password": "x"}).status_code for i in range(8)
    ]
    assert codes[:6] == [401] * 6 and codes[6:] == [429, 429]
    # Throttled even with the right password: the address is refused until the window passes.
    assert client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).status_code == 429


def test_expired_and_unknown_tokens_are_refused(hub: tuple[HubConfig, TestClient]) -> None:
    config, client = hub
    headers = sign_in(client, "admin")
    conn = connect(config.db_path)
    conn.execute("UPDATE credentials SET expires = 1")
    conn.close()
    assert client.get("/api/v1/cameras", headers=headers).status_code == 401
    assert client.get("/api/v1/cameras", headers={"Authorization": "Bearer dlb_made_up"}).status_code == 401
    assert client.get("/api/v1/cameras", headers={"Authorization": "Basic abc"}).status_code == 401


def test_api_tokens_are_shown_once_and_stored_hashed(hub: tuple[HubConfig, TestClient]) -> None:
    config, client = hub
    police = sign_in(client, "police1")
    created = client.post("/api/v1/auth/tokens", json={"name": "station system", "days": 30}, headers=police).json()
    token = created["token"]
    assert token.startswith("dlt_") and created["expires"] > time.time() + 29 * 86400
    assert client.get("/api/v1/cameras", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    raw = b"".join(f.read_bytes() for f in config.db_path.parent.glob("hub.db*"))
    assert token.encode() not in raw
    assert client.post("/api/v1/auth/tokens", json={"name": "x"}, headers=sign_in(client, "owner1")).status_code == 403


def test_every_response_carries_the_security_headers(hub: tuple[HubConfig, TestClient]) -> None:
    _, client = hub
    for path in ("/login", "/api/v1/cameras", "/static/app.css", "/no-such-page"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert headers["referrer-policy"] == "no-referrer" and headers["x-content-type-options"] == "nosniff"


def test_pages_use_no_inline_script(hub: tuple[HubConfig, TestClient]) -> None:
    _, client = hub
    client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    for path in ("/login", "/", "/alerts", f"/alerts/{ulid(0)}", "/devices", "/users", "/audit", "/?lang=en"):
        page = client.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 200, path
        assert '<meta name="viewport"' in page.text
        for script in re.findall(r"<script[^>]*>(.*?)</script>", page.text, re.S):
            assert script.strip() == "", (path, script[:80])
        assert not re.search(r"\son[a-z]+=", page.text), path  # no inline event handlers either


def test_a_stranger_is_sent_to_sign_in_and_a_wrong_role_gets_the_error_page(hub: tuple[HubConfig, TestClient]) -> None:
    _, client = hub
    page = client.get("/alerts", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    client.post("/api/v1/auth/login", json={"username": "owner1", "password": PASSWORD})
    denied = client.get("/users", headers={"Accept": "text/html"})
    assert denied.status_code == 403 and "您无权" in denied.text
    missing = client.get(f"/alerts/{ulid(1)}", headers={"Accept": "text/html"})  # another owner's alert
    assert missing.status_code == 404 and "找不到" in missing.text


BAD_BODIES: list[Any] = [None, [], "x", {"username": 5, "password": "x"}, {"username": "a" * 1000, "password": "x"}]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_bad_input_gets_a_4xx_with_a_message_never_a_500(hub: tuple[HubConfig, TestClient], body: Any) -> None:
    _, client = hub
    response = client.post("/api/v1/auth/login", json=body)
    assert 400 <= response.status_code < 500
    assert response.json()["detail"] and "Traceback" not in response.text


def test_views_logins_and_user_changes_are_audited_and_an_edit_is_detected(
    hub: tuple[HubConfig, TestClient], tmp_path: Path
) -> None:
    config, client = hub
    admin = sign_in(client, "admin")
    client.post("/api/v1/auth/login", json={"username": "owner1", "password": "wrong"})
    client.get(f"/api/v1/alerts/{ulid(0)}/snapshot", headers=admin)
    rows = client.get("/api/v1/audit?limit=200", headers=admin).json()["items"]
    actions = [(r["actor"], r["action"]) for r in rows]
    assert ("admin", "snapshot.view") in actions and ("owner1", "login.failed") in actions
    assert ("cli", "user.add") in actions and ("admin", "login") in actions
    assert all(r["address"] for r in rows if r["actor"] != "cli")
    csv_text = client.get("/api/v1/audit/export.csv", headers=admin).text
    assert "snapshot.view" in csv_text and csv_text.startswith("\ufeffid,time_utc,actor")

    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(json.loads(config.model_dump_json())))
    ok = subprocess.run(hub_cmd("audit", "verify", "--config", str(path)), capture_output=True, text=True)
    assert ok.returncode == 0 and "intact" in ok.stdout
    # The triggers stop the hub itself; someone with the file drops them and edits row 3.
    conn = sqlite3.connect(config.db_path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'nobody' WHERE id = 3")
    conn.executescript("DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'nobody' WHERE id = 3;")
    conn.close()
    bad = subprocess.run(hub_cmd("audit", "verify", "--config", str(path)), capture_output=True, text=True)
    assert bad.returncode == 1 and "row 3" in bad.stderr and "altered" in bad.stderr
    verdict = client.get("/api/v1/audit/verify", headers=admin).json()
    assert verdict["intact"] is False and verdict["first_bad"] == 3


def test_a_removed_audit_row_is_detected(hub: tuple[HubConfig, TestClient]) -> None:
    config, client = hub
    sign_in(client, "admin")
    conn = sqlite3.connect(config.db_path)
    conn.executescript("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 2;")
    result = audit.verify(conn)
    conn.close()
    assert result.first_bad == 2 and "removed" in (result.problem or "")
