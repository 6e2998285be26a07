"""A property-based run over the hub's OpenAPI (schemathesis): generated requests to every
operation, signed in as an admin (who may reach every route) and as a shop owner (who is
refused most), never get a 500."""

from __future__ import annotations

from pathlib import Path

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.api.app import create_app
from hub.config import HubConfig
from tests.test_web_api import PASSWORD, make_hub_data

EXAMPLES = 15  # per operation and run; the suite's time matters more than depth here


def test_no_generated_request_gets_a_500(tmp_path: Path) -> None:
    make_hub_data(tmp_path / "hub")
    app = create_app(HubConfig.model_validate({"data_dir": str(tmp_path / "hub")}))
    with TestClient(app) as client:
        tokens = [
            client.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD}).json()["token"]
            for user in ("admin", "owner1")
        ]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures: list[str] = []
    for operation in operations:
        if operation.path.endswith("/stream") or "logout" in operation.path:
            continue  # an endless stream, and calls that would sign the fuzzer out mid-run

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy(), token=st.sampled_from(tokens))
        def run(case: schemathesis.Case, token: str) -> None:
            try:
                response = case.call(headers={"Authorization": f"Bearer {token}"})
            except Exception as exc:  # the app raised: the real server would have answered 500
                failures.append(f"{case.method} {case.formatted_path} -> {type(exc).__name__}: {exc}")
                return
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        run()
    assert not failures, failures[:10]


def _integers(schema: dict[str, object]) -> list[dict[str, object]]:
    """The integer schemas in a parameter's schema (plain, or inside anyOf for an optional one)."""
    found = [schema] if schema.get("type") == "integer" else []
    for part in schema.get("anyOf", []) or []:  # type: ignore[attr-defined]
        found += _integers(part)
    return found


def test_every_integer_in_a_path_or_query_is_bounded_to_sqlite(tmp_path: Path) -> None:
    """The fuzzer above draws few examples per route, so it may miss the one huge number that
    overflows SQLite's 64-bit integers (it once did: POST /incidents/2**65/clips was a 500). Every
    integer a client can put in a URL must carry a maximum SQLite can hold."""
    make_hub_data(tmp_path / "hub")
    app = create_app(HubConfig.model_validate({"data_dir": str(tmp_path / "hub")}))
    unbounded = []
    for path, methods in app.openapi()["paths"].items():
        for method, operation in methods.items():
            for parameter in operation.get("parameters", []):
                for schema in _integers(parameter["schema"]):
                    maximum = schema.get("maximum")
                    if not isinstance(maximum, int) or maximum > 2**63 - 1:
                        unbounded.append(f"{method.upper()} {path} {parameter['name']}")
    assert not unbounded
    with TestClient(app) as client:
        token = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).json()["token"]
        response = client.get(f"/api/v1/incidents/{2**65}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    assert "incident_id" in response.text
