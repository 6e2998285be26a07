"""The centre's figures against values computed by hand on a fixture with due, closed, late,
reworked, open and out-of-period incidents; the CSV export; a grid worker's figures cover only
their grids."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.config import HubConfig
from hub.db import HubDB
from hub.services import accounts, audit, figures
from hub.store import connect

H = 3600.0
T0 = 1796083200.0  # 2026-12-01T00:00:00Z
PASSWORD = "correct horse battery"
# (grid, category, status, created, due, resolved, closed, reworks)
FIXTURE = [
    ("A", "intrusion", "closed", T0, T0 + 12 * H, T0 + 8 * H, T0 + 10 * H, 0),  # closed, on time, 10 h
    ("A", "intrusion", "closed", T0, T0 + 12 * H, T0 + 20 * H, T0 + 30 * H, 1),  # late, reworked, 30 h
    ("A", "forced_door", "in_progress", T0, T0 + 2 * H, None, None, 0),  # overdue, open
    ("A", "forced_door", "closed", T0, T0 + 24 * H, T0 + 18 * H, T0 + 20 * H, 0),  # on time, 20 h
    ("B", "intrusion", "closed", T0, T0 + 12 * H, T0 + 4 * H, T0 + 5 * H, 0),  # on time, 5 h
    ("B", "camera_offline", "resolved", T0, T0 + 168 * H, T0 + 50 * H, None, 2),  # on time, reworked, open
    ("B", "intrusion", "closed", T0 - 40 * 86400, T0 - 39 * 86400, T0 - 39.5 * 86400, T0 - 39 * 86400, 0),  # before
    ("B", "intrusion", "reported", T0, None, None, None, 0),  # never dispatched: not due
]


def load(conn: sqlite3.Connection) -> None:
    for grid, category, status, created, due, resolved, closed, reworks in FIXTURE:
        conn.execute(
            "INSERT INTO incidents (status, grid, category, priority, title, description, source, created, "
            "updated, dispatched, due, resolved, closed, reworks) "
            "VALUES (?, ?, ?, 'normal', 't', '', 'rule', ?, ?, ?, ?, ?, ?, ?)",
            (status, grid, category, created, created, created if due else None, due, resolved, closed, reworks),
        )


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    HubDB(tmp_path / "hub.db").close()
    c = connect(tmp_path / "hub.db")
    load(c)
    yield c
    c.close()


def test_figures_match_the_hand_computed_values(conn: sqlite3.Connection) -> None:
    period = (T0 - 86400, T0 + 30 * 86400)
    by_grid = {r.key: r for r in figures.figures(conn, None, "grid", *period).rows}
    a, b = by_grid["A"], by_grid["B"]
    assert (a.due, a.closed, a.on_time, a.reworked) == (4, 3, 2, 1)
    assert (a.closure_rate, a.on_time_rate, a.rework_rate) == (0.75, 0.5, 0.25)
    assert a.mean_hours_to_close == pytest.approx((10 + 30 + 20) / 3)
    assert (b.due, b.closed, b.on_time, b.reworked) == (2, 1, 2, 1)
    assert (b.closure_rate, b.on_time_rate, b.rework_rate) == (0.5, 1.0, 0.5)
    assert b.mean_hours_to_close == pytest.approx(5)
    (total,) = figures.figures(conn, None, "all", *period).rows
    assert (total.due, total.closed, total.on_time, total.reworked) == (6, 4, 4, 2)
    assert total.closure_rate == pytest.approx(4 / 6) and total.mean_hours_to_close == pytest.approx(65 / 4)
    by_category = {r.key: (r.due, r.closed) for r in figures.figures(conn, None, "category", *period).rows}
    assert by_category == {"camera_offline": (1, 0), "forced_door": (2, 1), "intrusion": (3, 3)}
    months = {r.key: r.due for r in figures.figures(conn, None, "month", T0 - 60 * 86400, T0 + 30 * 86400).rows}
    assert months == {"2026-10": 1, "2026-12": 6}


def test_csv_and_scope_over_the_api(conn: sqlite3.Connection, tmp_path: Path) -> None:
    accounts.add_user(conn, audit.CLI, "admin", PASSWORD, "admin")
    accounts.add_user(conn, audit.CLI, "wang", PASSWORD, "grid_worker")
    user = conn.execute("SELECT id FROM users WHERE username = 'wang'").fetchone()[0]
    conn.execute("INSERT INTO user_scopes VALUES (?, 'grid', 'B')", (user,))
    config = HubConfig.model_validate({"data_dir": str(tmp_path)})
    with TestClient(create_app(config)) as client:
        tokens = {}
        for name in ("admin", "wang"):
            login = client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD}).json()
            tokens[name] = {"Authorization": f"Bearer {login['token']}"}
        params = {"by": "grid", "since": "2026-11-30T00:00:00Z", "until": "2026-12-31T00:00:00Z"}
        exported = client.get("/api/v1/incidents/figures.csv", params=params, headers=tokens["admin"])
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(exported.text)))
        assert rows == [
            ["grid", "due", "closed", "on_time", "reworked", "closure_rate", "on_time_rate", "rework_rate",
             "mean_hours_to_close"],
            ["A", "4", "3", "2", "1", "0.7500", "0.5000", "0.2500", "20.00"],
            ["B", "2", "1", "2", "1", "0.5000", "1.0000", "0.5000", "5.00"],
        ]  # fmt: skip
        mine = client.get("/api/v1/incidents/figures", params=params, headers=tokens["wang"]).json()
        assert [r["key"] for r in mine["rows"]] == ["B"]
        bad = client.get("/api/v1/incidents/figures", params={"by": "planet"}, headers=tokens["admin"])
        assert bad.status_code == 422
