"""The README's first command: the demo records the real footage, raises person events, cuts a
clip with its manifest and shows what the hub received over MQTT, without an error line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import SHARED_VIDEO


def test_the_demo_records_alerts_and_reaches_the_hub_without_errors(tmp_path: Path) -> None:
    assert (SHARED_VIDEO / "one-by-one-person-detection.mp4").exists()
    out = subprocess.run(
        [sys.executable, "-m", "demo", "--dir", str(tmp_path / "demo"), "--seconds", "15", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = out.stdout + out.stderr
    assert out.returncode == 0, log
    assert not [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line], log
    assert re.search(r"timeline: [\d.]+ s recorded in \d+ segments", log)
    # The web UI's address and a login per role, also kept in logins.txt.
    assert re.search(r"web UI: http://127\.0\.0\.1:\d+/", log)
    logins = (tmp_path / "demo" / "logins.txt").read_text().splitlines()
    assert [line.split("\t")[:2] for line in logins] == [
        ["admin", "admin"],
        ["shop", "shop_owner"],
        ["police", "police"],
    ]
    for line in logins:
        assert f"password {line.split(chr(9))[2]}" in log
    events = int(re.search(r"person events: (\d+)", log).group(1))  # type: ignore[union-attr]
    assert events >= 1
    # Every person event reached the hub: a "new" row per event in the hub's table.
    hub_rows = [line for line in log.split("events at the hub", 1)[1].splitlines() if " person " in line]
    assert sum(" new " in row for row in hub_rows) == events
    manifest = json.loads(next((tmp_path / "demo" / "clips").glob("*.manifest.json")).read_text())
    assert manifest["camera"] == "demo-cam" and manifest["sha256"]
