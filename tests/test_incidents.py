"""The grid incident registry against a real hub.db: grids from GeoJSON through the CLI, cameras
placed by position, the whole lifecycle (with rework and suspension) over the API, the role check
on every step, object-level 404s for other grids, photos, and `incidents list`."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from PIL import Image

from hub.api.app import create_app
from hub.config import HubConfig
from hub.models import ROLES
from hub.services import accounts, audit
from hub.services.incidents import TRANSITIONS
from hub.store import connect
from tests.test_hub import hub_cmd
from tests.test_web_api import PASSWORD, USERS_BY_ROLE, make_hub_data, sign_in, ulid


def square(west: float) -> list[list[float]]:
    return [[west, 22.0], [west + 0.1, 22.0], [west + 0.1, 22.1], [west, 22.1], [west, 22.0]]


# Two square grids side by side; lanxi's shop-1 stands in LX-01, shop-2 in LX-02.
GEOJSON = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"code": "LX-01", "name": "兰溪一网格", "civil_code": "440781101001"},
            "geometry": {"type": "Polygon", "coordinates": [square(112.0)]},
        },
        {
            "type": "Feature",
            "properties": {"code": "LX-02", "name": "兰溪二网格", "civil_code": "440781101002"},
            "geometry": {"type": "Polygon", "coordinates": [square(112.1)]},
        },
    ],
}  # fmt: skip


def run_cli(config_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    words = [*args[:2], "--config", str(config_file), *args[2:]]
    return subprocess.run(hub_cmd(*words), capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("incidents")
    data_dir = root / "hub"
    make_hub_data(data_dir)
    conn = connect(data_dir / "hub.db")
    accounts.add_user(conn, audit.CLI, "grid2", PASSWORD, "grid_worker")
    conn.close()
    config_file = root / "hub.yaml"
    config_file.write_text(yaml.safe_dump({"data_dir": str(data_dir)}))
    geo = root / "grids.geojson"
    geo.write_text(json.dumps(GEOJSON, ensure_ascii=False), encoding="utf-8")
    done = run_cli(config_file, "grids", "import", str(geo))
    assert done.returncode == 0 and "imported 2 grids" in done.stdout, done.stderr
    for args in (
        ("grids", "place", "lanxi.shop-1", "--lon", "112.05", "--lat", "22.05"),
        ("grids", "place", "lanxi.shop-2", "--lon", "112.15", "--lat", "22.05"),
        ("grids", "assign", "--username", "grid1", "--grid", "LX-01"),
        ("grids", "assign", "--username", "grid2", "--grid", "LX-02"),
    ):
        done = run_cli(config_file, *args)
        assert done.returncode == 0, (args, done.stderr)
    return root


@pytest.fixture
def hub(template: Path, tmp_path: Path) -> Iterator[tuple[Path, TestClient]]:
    shutil.copytree(template / "hub", tmp_path / "hub")
    config_file = tmp_path / "hub.yaml"
    config_file.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "hub")}))
    config = HubConfig.model_validate({"data_dir": str(tmp_path / "hub")})
    with TestClient(create_app(config)) as client:
        yield config_file, client


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def step(
    client: TestClient, who: dict[str, str], incident: int, action: str, note: str = "", photos: list[str] | None = None
) -> dict:  # type: ignore[type-arg]
    body = {"note": note, "photos": photos or []}
    response = client.post(f"/api/v1/incidents/{incident}/actions/{action}", json=body, headers=who)
    assert response.status_code == 200, (action, response.text)
    return response.json()  # type: ignore[no-any-return]


def test_cli_places_by_position_and_refuses_broken_geojson(template: Path, tmp_path: Path) -> None:
    config_file = template / "hub.yaml"
    listed = run_cli(config_file, "grids", "list")
    assert "LX-01" in listed.stdout and "440781101002" in listed.stdout
    outside = run_cli(config_file, "grids", "place", "dongcun.lane-1", "--lon", "100", "--lat", "20")
    assert outside.returncode == 0 and "outside every grid" in outside.stdout
    bad = tmp_path / "bad.geojson"
    broken = json.loads(json.dumps(GEOJSON))
    broken["features"][1]["geometry"]["coordinates"][0][2] = ["x", 1]
    bad.write_text(json.dumps(broken))
    done = run_cli(config_file, "grids", "import", str(bad))
    assert done.returncode != 0 and "feature 1 (grid LX-02)" in done.stderr and "not a [lon, lat]" in done.stderr
    unknown = run_cli(config_file, "grids", "assign", "--username", "owner1", "--grid", "LX-01")
    assert unknown.returncode != 0 and "not a grid_worker" in unknown.stderr


def test_whole_lifecycle_with_rework_and_suspension(hub: tuple[Path, TestClient]) -> None:
    config_file, client = hub
    admin, worker, other = (sign_in(client, u) for u in ("admin", "grid1", "grid2"))
    body = {"alert_id": ulid(0), "category": "intrusion", "note": "person at night"}
    created = client.post("/api/v1/incidents", json=body, headers=admin)
    assert created.status_code == 201, created.text
    inc = created.json()["incident"]
    assert inc["status"] == "reported" and inc["grid"] == "LX-01" and inc["alerts"] == [ulid(0)]
    n = inc["id"]
    again = client.post("/api/v1/incidents", json={"alert_id": ulid(0), "category": "intrusion"}, headers=admin)
    assert again.status_code == 409 and f"incident {n}" in again.json()["detail"]
    # The other grid's worker cannot even learn it exists; this grid's worker sees it.
    assert client.get(f"/api/v1/incidents/{n}", headers=other).status_code == 404
    assert [i["id"] for i in client.get("/api/v1/incidents", headers=worker).json()["items"]] == [n]
    assert client.get("/api/v1/incidents", headers=other).json()["items"] == []

    step(client, admin, n, "accept")
    assert step(client, admin, n, "dispatch")["due"] is not None
    step(client, worker, n, "start")
    photo = client.post(f"/api/v1/incidents/{n}/photos", content=_jpeg(), headers=worker)
    assert photo.status_code == 201
    name = photo.json()["name"]
    assert client.post(f"/api/v1/incidents/{n}/photos", content=b"not an image", headers=worker).status_code == 422
    missing_note = client.post(f"/api/v1/incidents/{n}/actions/resolve", json={}, headers=worker)
    assert missing_note.status_code == 422 and "note" in missing_note.json()["detail"]
    step(client, worker, n, "resolve", "door locked, owner told", [name])
    back = step(client, admin, n, "rework", "owner says the door is still open")
    assert back["status"] == "rework" and back["reworks"] == 1
    step(client, worker, n, "start")
    step(client, worker, n, "resolve", "lock replaced")
    step(client, admin, n, "verify")
    closed = step(client, admin, n, "close")
    assert closed["status"] == "closed" and closed["closed"] is not None
    late = client.post(f"/api/v1/incidents/{n}/actions/note", json={"note": "x"}, headers=admin)
    assert late.status_code == 409

    detail = client.get(f"/api/v1/incidents/{n}", headers=worker).json()
    actions = [(e["action"], e["from_status"], e["to_status"], e["actor"]) for e in detail["history"]]
    assert actions == [
        ("create", None, "reported", "admin"),
        ("accept", "reported", "accepted", "admin"),
        ("dispatch", "accepted", "dispatched", "admin"),
        ("start", "dispatched", "in_progress", "grid1"),
        ("resolve", "in_progress", "resolved", "grid1"),
        ("rework", "resolved", "rework", "admin"),
        ("start", "rework", "in_progress", "grid1"),
        ("resolve", "in_progress", "resolved", "grid1"),
        ("verify", "resolved", "verified", "admin"),
        ("close", "verified", "closed", "admin"),
    ]
    assert detail["history"][4]["photos"] == [name]
    assert client.get(f"/api/v1/incidents/{n}/photos/{name}", headers=worker).content == _jpeg()
    assert client.get(f"/api/v1/incidents/{n}/photos/{name}", headers=other).status_code == 404

    # Suspension: with a reason, back to where it was.
    m = client.post("/api/v1/incidents", json={"alert_id": ulid(1), "category": "intrusion"}, headers=admin).json()
    m_id = m["incident"]["id"]
    assert m["incident"]["grid"] == "LX-02"
    step(client, admin, m_id, "accept")
    step(client, admin, m_id, "dispatch")
    no_reason = client.post(f"/api/v1/incidents/{m_id}/actions/suspend", json={}, headers=admin)
    assert no_reason.status_code == 422
    assert step(client, admin, m_id, "suspend", "owner abroad until Monday")["status"] == "suspended"
    assert step(client, admin, m_id, "resume")["status"] == "dispatched"

    # History is append-only, even for the hub itself.
    conn = connect(config_file.parent / "hub" / "hub.db")
    with pytest.raises(Exception, match="append-only"):
        conn.execute("UPDATE incident_events SET note = 'edited' WHERE incident_id = ?", (n,))
    assert (
        conn.execute("SELECT count(*) FROM audit WHERE action LIKE 'incidents.%'").fetchone()[0] == 15
    )  # 10 steps of the first, 5 of the second
    conn.close()

    listed = run_cli(config_file, "incidents", "list", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["id"], r["status"], r["grid"], r["category"], r["alerts"], r["refs"]) for r in rows] == [
        (m_id, "dispatched", "LX-02", "intrusion", [ulid(1)], {}),
        (n, "closed", "LX-01", "intrusion", [ulid(0)], {}),
    ]
    only = run_cli(config_file, "incidents", "list", "--status", "closed", "--grid", "LX-01", "--json")
    assert [json.loads(line)["id"] for line in only.stdout.splitlines()] == [n]
    text = run_cli(config_file, "incidents", "list", "--grid", "LX-09")
    assert text.returncode == 0 and text.stdout.strip() == "(none)"


def test_every_step_is_refused_to_every_role_that_may_not_take_it(hub: tuple[Path, TestClient]) -> None:
    config_file, client = hub
    tokens = {role: sign_in(client, user) for role, user in USERS_BY_ROLE.items()}
    admin = tokens["admin"]
    n = client.post("/api/v1/incidents", json={"alert_id": ulid(0), "category": "intrusion"}, headers=admin).json()
    incident = n["incident"]["id"]
    conn = connect(config_file.parent / "hub" / "hub.db")
    checked = 0
    for action, rule in TRANSITIONS.items():
        source = sorted(rule.sources)[0]
        for role in ROLES:
            conn.execute(
                "UPDATE incidents SET status = ?, suspended_from = 'accepted' WHERE id = ?", (source, incident)
            )
            response = client.post(
                f"/api/v1/incidents/{incident}/actions/{action}", json={"note": "why"}, headers=tokens[role]
            )
            if role in rule.roles:
                assert response.status_code == 200, (action, role, response.text)
            else:
                assert response.status_code in (403, 404), (action, role, response.status_code)
                if role in ("admin", "grid_worker", "police"):
                    # Police see lanxi's incidents, grid1 serves LX-01: a real role refusal.
                    assert response.status_code == 403 and role in response.json()["detail"], (action, role)
                after = conn.execute("SELECT status FROM incidents WHERE id = ?", (incident,)).fetchone()[0]
                assert after == source
            checked += 1
        wrong = sorted({"reported", "closed", "rejected", "in_progress"} - rule.sources)[0]
        conn.execute("UPDATE incidents SET status = ? WHERE id = ?", (wrong, incident))
        response = client.post(f"/api/v1/incidents/{incident}/actions/{action}", json={"note": "why"}, headers=admin)
        assert response.status_code == 409, (action, wrong)
    conn.close()
    assert checked == len(TRANSITIONS) * len(ROLES)
    assert client.post(f"/api/v1/incidents/{incident}/actions/teleport", json={}, headers=admin).status_code == 422
    for role in ("shop_owner", "dorm_manager", "grid_worker", "police"):
        raised = client.post("/api/v1/incidents", json={"alert_id": ulid(3), "category": "x"}, headers=tokens[role])
        assert raised.status_code == 403
