"""Triage against a real hub.db: rules by kind, site, zone, detail and time of day propose
incidents; alerts of the same place inside the dedup window attach to the open one, outside it
(or once it is closed) open another; a camera offline past the rule's minutes is proposed once,
one that came back is not; a broken rules file is refused by name."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from contract import Event
from hub.config import HubConfig
from hub.db import HubDB
from hub.records import Record
from hub.services import audit, incidents
from hub.services.triage import TriageRule, set_rules, triage_step
from hub.store import connect
from tests.test_hub import hub_cmd

# 2026-12-04 14:00 UTC is 22:00 in Shanghai: "night" below.
NIGHT = 1796392800.0
DAY = NIGHT - 10 * 3600  # 12:00 in Shanghai


class Hub:
    def __init__(self, data_dir: Path) -> None:
        self.config = HubConfig.model_validate({"data_dir": str(data_dir)})
        self.db = HubDB(self.config.db_path)
        self.conn = connect(self.config.db_path)
        self.n = 0

    def alert(self, kind: str, t: float, site: str = "lanxi", device: str = "shop-1", camera: str | None = "door",
              **detail: Any) -> str:  # fmt: skip
        self.n += 1
        ev = Event(id=f"01JA2B3C4D5E6F7G8H9J0K{self.n:04d}", kind=kind, phase="instant" if kind != "person" else "new",
                   camera=camera, time=t, detail=detail)  # fmt: skip
        self.db.write([Record("event", site, device, time.time(), message=ev)])
        return ev.id

    def incidents(self) -> list[incidents.Incident]:
        return list(reversed(incidents.list_incidents(self.conn, None)))


@pytest.fixture
def hub(tmp_path: Path) -> Any:
    h = Hub(tmp_path / "hub")
    rules = [
        TriageRule(name="shop-night", kinds=["person"], sites=["lanxi"], zones=["shop"], start="21:00", end="07:00",
                   category="intrusion", priority="high", dedup_minutes=30),
        TriageRule(name="forced-door", kinds=["door_alarm"], detail={"alarm": "forced"}, category="forced_door",
                   priority="urgent", escalate=True),
        TriageRule(name="offline", kinds=["camera_offline"], offline_minutes=60, category="camera_offline",
                   priority="low"),
    ]  # fmt: skip
    set_rules(h.conn, audit.CLI, rules)
    yield h
    h.conn.close()
    h.db.close()


def test_rules_propose_and_the_dedup_window_attaches(hub: Hub) -> None:
    day = hub.alert("person", DAY, zone="shop")  # daytime: no rule
    other_zone = hub.alert("person", NIGHT, zone="street")
    first = hub.alert("person", NIGHT, zone="shop")
    second = hub.alert("person", NIGHT + 60, zone="shop")
    held = hub.alert("door_alarm", NIGHT, device="dorm-gate", camera=None, alarm="held")
    forced = hub.alert("door_alarm", NIGHT, device="dorm-gate", camera=None, alarm="forced")
    assert triage_step(hub.conn, NIGHT + 120) == (6, 2)
    found = hub.incidents()
    assert [(i.category, i.priority, i.source, i.alerts) for i in found] == [
        ("intrusion", "high", "rule", [first, second]),
        ("forced_door", "urgent", "rule", [forced]),
    ]
    assert day not in found[0].alerts and other_zone not in found[0].alerts and held not in found[1].alerts
    # The forced-door rule escalates to the police by itself, audited; the intrusion rule does not.
    assert [i.police_state for i in found] == [None, "escalated"]
    row = hub.conn.execute("SELECT actor, detail FROM audit WHERE action = 'police.escalate'").fetchone()
    assert row[0] == "triage" and "forced-door" in row[1]
    # Nothing new: the cursor moved, nothing is read twice.
    assert triage_step(hub.conn, NIGHT + 130) == (0, 0)

    # Inside the window (counted from the incident's last update) it attaches; after it, a new one.
    third = hub.alert("person", NIGHT + 600, zone="shop")
    assert triage_step(hub.conn, NIGHT + 20 * 60) == (1, 0)
    late = hub.alert("person", NIGHT + 3600, zone="shop")
    assert triage_step(hub.conn, NIGHT + 20 * 60 + 31 * 60) == (1, 1)
    found = hub.incidents()
    assert found[0].alerts == [first, second, third] and found[2].alerts == [late]
    # A closed incident takes nothing more: the next alert opens another even inside the window.
    hub.conn.execute("UPDATE incidents SET status = 'closed' WHERE id = ?", (found[2].id,))
    again = hub.alert("person", NIGHT + 3700, zone="shop")
    assert triage_step(hub.conn, NIGHT + 20 * 60 + 32 * 60) == (1, 1)
    assert hub.incidents()[-1].alerts == [again]


def test_camera_offline_for_an_hour_is_proposed_once_and_a_camera_back_is_not(hub: Hub) -> None:
    gone = hub.alert("camera_offline", NIGHT, camera="door")
    hub.alert("camera_offline", NIGHT, device="shop-2", camera="door")
    hub.alert("camera_back", NIGHT + 600, device="shop-2", camera="door")
    assert triage_step(hub.conn, NIGHT + 59 * 60) == (3, 0)  # not an hour yet
    assert triage_step(hub.conn, NIGHT + 61 * 60) == (0, 1)
    assert triage_step(hub.conn, NIGHT + 90 * 60) == (0, 0)  # once
    assert [(i.category, i.device, i.alerts) for i in hub.incidents()] == [("camera_offline", "shop-1", [gone])]


def load(config_file: Path, rules: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        hub_cmd("triage", "load", "--config", str(config_file), str(rules)), capture_output=True, text=True
    )


def test_a_broken_rules_file_is_refused_by_name(tmp_path: Path) -> None:
    config_file = tmp_path / "hub.yaml"
    config_file.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "hub")}))
    rules = tmp_path / "rules.yaml"
    rule = {"name": "night", "kinds": ["person"], "start": "25:00", "end": "06:00", "category": "intrusion"}
    rules.write_text(yaml.safe_dump({"rules": [rule]}))
    done = load(config_file, rules)
    assert done.returncode != 0 and "rules.0.start" in done.stderr
    rule["start"] = "22:00"
    rule["time_zone"] = "Mars/Olympus"
    rules.write_text(yaml.safe_dump({"rules": [rule]}))
    done = load(config_file, rules)
    assert done.returncode != 0 and "Mars/Olympus" in done.stderr
    rule["time_zone"] = "Asia/Shanghai"
    rules.write_text(yaml.safe_dump({"rules": [rule]}))
    done = load(config_file, rules)
    assert done.returncode == 0 and "loaded 1 triage rules" in done.stdout
    listed = subprocess.run(hub_cmd("triage", "list", "--config", str(config_file)), capture_output=True, text=True)
    assert '"name":"night"' in listed.stdout
