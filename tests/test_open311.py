"""Open311 GeoReport v2 against a real hub.db, field by field against the spec
(https://wiki.open311.org/GeoReport_v2): services.json and services/{code}.json, POST
requests.json (form-encoded, api_key), GET requests.json with its filters and requests/{id}.json,
the spec's error list, and keys from `diaolou-hub open311 key`."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.config import HubConfig
from hub.models import Principal
from hub.services import audit, incidents, intake
from hub.store import connect
from tests.test_hub import hub_cmd
from tests.test_web_api import make_hub_data, sign_in, ulid

SERVICE_FIELDS = {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
REQUEST_FIELDS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
    "address", "address_id", "zipcode", "lat", "long", "media_url",
}  # fmt: skip
ISO_WITH_ZONE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")
ADMIN = Principal(user_id=1, username="admin", role="admin", locale="zh")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("open311")
    make_hub_data(root / "hub")
    return root


@pytest.fixture
def hub(template: Path, tmp_path: Path) -> Iterator[tuple[Path, TestClient, str]]:
    shutil.copytree(template / "hub", tmp_path / "hub")
    config_file = tmp_path / "hub.yaml"
    config_file.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "hub")}))
    made = subprocess.run(hub_cmd("open311", "key", "--config", str(config_file), "--name", "hotline-12345"),
                          capture_output=True, text=True, check=True)  # fmt: skip
    key = made.stdout.strip()
    assert key.startswith("o311_") and len(key) > 30
    again = subprocess.run(hub_cmd("open311", "key", "--config", str(config_file), "--name", "hotline-12345"),
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode != 0 and "exists already" in again.stderr
    config = HubConfig.model_validate({"data_dir": str(tmp_path / "hub")})
    with TestClient(create_app(config)) as client:
        yield config_file, client, key


def test_services_list_and_definition(hub: tuple[Path, TestClient, str]) -> None:
    _, client, _ = hub
    listed = client.get("/open311/v2/services.json")
    assert listed.status_code == 200 and listed.headers["content-type"].startswith("application/json")
    services = listed.json()
    assert services and all(set(s) == SERVICE_FIELDS for s in services)
    assert all(s["type"] in ("realtime", "batch", "blackbox") and s["metadata"] is False for s in services)
    codes = [s["service_code"] for s in services]
    assert "public_report" in codes and "intrusion" in codes
    definition = client.get("/open311/v2/services/public_report.json?jurisdiction_id=lanxi").json()
    assert definition == {"service_code": "public_report", "attributes": []}
    missing = client.get("/open311/v2/services/nothing.json")
    assert missing.status_code == 404 and missing.json() == [{"code": 404, "description": "no service 'nothing'"}]


def test_post_then_get_field_by_field(hub: tuple[Path, TestClient, str]) -> None:
    config_file, client, key = hub
    form = {"api_key": key, "service_code": "public_report", "lat": "22.05", "long": "112.05",
            "description": "路灯坏了，巷子里很黑\nLamp out in the lane", "address_string": "兰溪村 3 巷"}  # fmt: skip
    posted = client.post("/open311/v2/requests.json", data=form)
    assert posted.status_code == 200, posted.text
    created = posted.json()
    assert isinstance(created, list) and len(created) == 1
    assert set(created[0]) == {"service_request_id", "service_notice", "account_id"}
    rid = created[0]["service_request_id"]
    assert rid.isdigit()

    one = client.get(f"/open311/v2/requests/{rid}.json", params={"api_key": key}).json()
    assert isinstance(one, list) and len(one) == 1 and set(one[0]) == REQUEST_FIELDS
    r = one[0]
    assert r["service_request_id"] == rid and r["status"] == "open" and r["service_code"] == "public_report"
    assert r["service_name"].endswith("Public report") and r["lat"] == 22.05 and r["long"] == 112.05
    assert r["description"].startswith("路灯坏了") and "兰溪村 3 巷" in r["description"]
    assert ISO_WITH_ZONE.match(r["requested_datetime"]) and ISO_WITH_ZONE.match(r["updated_datetime"])
    assert r["expected_datetime"] is None  # no deadline before dispatch

    # It entered the registry like any other report; closing it there closes it here.
    conn = connect(config_file.parent / "hub" / "hub.db")
    inc = incidents.get(conn, None, int(rid)).incident
    assert inc.source == "open311" and inc.status == "reported"
    for action, note in (("accept", ""), ("dispatch", ""), ("start", ""), ("resolve", "lamp replaced"),
                         ("verify", ""), ("close", "")):  # fmt: skip
        incidents.transition(conn, ADMIN, audit.CLI, int(rid), action, note)
    other = intake.raise_by_hand(conn, ADMIN, audit.CLI, ulid(0), "intrusion", "high", "person at night").incident_id
    conn.close()
    closed = client.get(f"/open311/v2/requests/{rid}.json", params={"api_key": key}).json()[0]
    assert closed["status"] == "closed" and closed["status_notes"] == "lamp replaced"
    assert ISO_WITH_ZONE.match(closed["expected_datetime"])

    def ids(**params: str) -> list[str]:
        response = client.get("/open311/v2/requests.json", params={"api_key": key, **params})
        assert response.status_code == 200, response.text
        return [x["service_request_id"] for x in response.json()]

    assert ids() == [str(other), rid]
    assert ids(status="open") == [str(other)]
    assert ids(status="closed") == [rid]
    assert ids(status="open,closed", service_code="public_report") == [rid]
    assert ids(service_request_id=f"{rid},{other},999") == [rid, str(other)]
    now = datetime.now().astimezone()
    assert ids(end_date="2001-01-01T00:00:00Z") == []
    assert ids(start_date=now.replace(year=now.year - 1).isoformat()) == [str(other), rid]


def test_errors_are_the_specs_list(hub: tuple[Path, TestClient, str]) -> None:
    _, client, key = hub
    cases = [
        ({"service_code": "public_report", "lat": "1", "long": "1", "description": "x"}, 403, "api_key is required"),
        ({"api_key": "o311_wrong", "service_code": "public_report", "description": "x"}, 403, "invalid api_key"),
        ({"api_key": key, "service_code": "potholes", "lat": "1", "long": "1", "description": "x"}, 404, "no service"),
        ({"api_key": key, "service_code": "public_report", "description": "x"}, 400, "a location is required"),
        ({"api_key": key, "service_code": "public_report", "lat": "91", "long": "1", "description": "x"}, 400, "lat"),
        ({"api_key": key, "service_code": "public_report", "lat": "1", "long": "1"}, 400, "description"),
    ]
    for form, status, words in cases:
        response = client.post("/open311/v2/requests.json", data=form)
        assert response.status_code == status, (form, response.text)
        body = response.json()
        assert isinstance(body, list) and body[0]["code"] == status and words in body[0]["description"], body
    # Reading needs the key too, and a person's token is not one.
    assert client.get("/open311/v2/requests.json").status_code == 403
    token = sign_in(client, "admin")
    assert client.get("/open311/v2/requests.json", headers=token).status_code == 403
    bad = client.get("/open311/v2/requests.json", params={"api_key": key, "start_date": "2026-01-01T00:00:00"})
    assert bad.status_code == 400 and "time zone" in bad.json()[0]["description"]
    assert client.get("/open311/v2/requests/abc.json", params={"api_key": key}).status_code == 404
