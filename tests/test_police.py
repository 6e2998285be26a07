"""Police escalation against a real hub.db: the centre escalates, only the site's police take the
station's steps (in order), each step lands in the incident's history, its webhook queue and the
audit log, and the console's feed resumes after a reconnect from the last event id."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.config import HubConfig
from hub.models import Principal
from hub.services import police
from hub.store import connect
from tests.test_web_api import make_hub_data, sign_in, ulid

POLICE = Principal(user_id=4, username="police1", role="police", locale="zh", sites=frozenset({"lanxi"}))
OTHER_POLICE = Principal(user_id=9, username="police9", role="police", locale="zh", sites=frozenset({"dongcun"}))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("police") / "hub"
    make_hub_data(root)
    return root


@pytest.fixture
def hub(template: Path, tmp_path: Path) -> Iterator[tuple[HubConfig, TestClient]]:
    shutil.copytree(template, tmp_path / "hub")
    config = HubConfig.model_validate({"data_dir": str(tmp_path / "hub")})
    with TestClient(create_app(config)) as client:
        yield config, client


def test_escalation_acknowledgement_and_dispatch_flow_back_audited(hub: tuple[HubConfig, TestClient]) -> None:
    config, client = hub
    admin, cop, owner, worker = (sign_in(client, u) for u in ("admin", "police1", "owner1", "grid1"))
    n = client.post("/api/v1/incidents", json={"alert_id": ulid(0), "category": "intrusion"}, headers=admin)
    incident = n.json()["incident"]["id"]
    conn = connect(config.db_path)
    start = police.cursor(conn)

    def step(who: dict[str, str], name: str, note: str = "") -> tuple[int, dict]:  # type: ignore[type-arg]
        r = client.post(f"/api/v1/incidents/{incident}/police/{name}", json={"note": note}, headers=who)
        return r.status_code, r.json()

    assert step(cop, "escalate")[0] == 403  # the centre escalates, not the police
    assert step(admin, "acknowledge")[0] == 403
    assert step(owner, "escalate")[0] == 403 and step(worker, "escalate")[0] == 403
    assert step(cop, "acknowledge")[0] == 409  # not escalated yet
    assert step(admin, "escalate", "armed man seen")[1]["police_state"] == "escalated"
    assert step(admin, "escalate")[0] == 409
    assert step(cop, "dispatch")[0] == 409  # acknowledge first
    assert step(cop, "acknowledge")[1]["police_state"] == "acknowledged"
    assert step(cop, "dispatch", "car 3, officers Li and Chen")[1]["police_state"] == "dispatched"
    assert step(cop, "teleport")[0] == 422

    history = client.get(f"/api/v1/incidents/{incident}", headers=admin).json()["history"]
    assert [(e["action"], e["actor"]) for e in history[1:]] == [
        ("police.escalate", "admin"), ("police.acknowledge", "police1"), ("police.dispatch", "police1"),
    ]  # fmt: skip
    assert history[-1]["note"] == "car 3, officers Li and Chen" and history[-1]["to_status"] == "reported"
    actions = [r[0] for r in conn.execute("SELECT action FROM audit WHERE action LIKE 'police.%' ORDER BY id")]
    assert actions == ["police.escalate", "police.acknowledge", "police.dispatch"]

    # The console's feed: every step in order; a reconnect from the second resumes after it; the
    # police of another site see nothing.
    changes = police.changes_since(conn, POLICE, start)
    assert [c[1].police_state for c in changes] == ["dispatched"] * 3  # the incident as it is now
    ids = [c[0] for c in changes]
    assert [c[0] for c in police.changes_since(conn, POLICE, ids[1])] == ids[2:]
    assert police.changes_since(conn, OTHER_POLICE, start) == []
    conn.close()

    page = client.get("/police", headers={**cop, "accept": "text/html"})
    assert page.status_code == 200 and f'data-id="{incident}"' in page.text and "接警台" in page.text
    assert client.get("/police", headers={**owner, "accept": "text/html"}).status_code == 403


def test_a_clip_pulled_for_an_incident_keeps_its_hold_until_the_incident_closes(
    hub: tuple[HubConfig, TestClient],
) -> None:
    config, client = hub
    admin, cop, owner = (sign_in(client, u) for u in ("admin", "police1", "owner1"))
    incident = client.post("/api/v1/incidents", json={"alert_id": ulid(0), "category": "intrusion"}, headers=admin)
    n = incident.json()["incident"]["id"]
    alert_time = client.get(f"/api/v1/alerts/{ulid(0)}", headers=admin).json()["time"]
    window = {"start": alert_time - 30, "end": alert_time + 30}
    assert client.post(f"/api/v1/incidents/{n}/clips", json=window, headers=owner).status_code == 403
    pulled = client.post(f"/api/v1/incidents/{n}/clips", json=window, headers=cop)
    assert pulled.status_code == 202, pulled.text
    clip = pulled.json()["id"]
    history = client.get(f"/api/v1/incidents/{n}", headers=admin).json()["history"]
    assert history[-1]["action"] == "clip" and clip in history[-1]["note"]
    release = {"reason": "case closed by court"}
    held = client.post(f"/api/v1/clips/{clip}/release-hold", json=release, headers=admin)
    assert held.status_code == 409 and f"incident {n}" in held.json()["detail"]
    conn = connect(config.db_path)
    conn.execute("UPDATE incidents SET status = 'closed' WHERE id = ?", (n,))
    conn.close()
    assert client.post(f"/api/v1/clips/{clip}/release-hold", json=release, headers=admin).status_code == 202
