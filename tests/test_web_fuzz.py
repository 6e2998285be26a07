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
