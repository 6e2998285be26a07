"""Docs that are generated from code stay in step with it; shipped examples stay valid."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge_agent.config import load_config
from firmware_configs import EXAMPLE_DIR
from tests.conftest import REPO


def test_configuration_reference_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "docs" / "gen_config_reference.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr + "\nrun: python docs/gen_config_reference.py"


def test_hub_configuration_reference_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "docs" / "gen_hub_config_reference.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr + "\nrun: python docs/gen_hub_config_reference.py"


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLE_DIR.glob("*.yaml")))
def test_example_configs_validate(example: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SHOP_CAM_PASSWORD", "LANE_CAM_PASSWORD", "GATE_CAM_PASSWORD", "HALL_CAM_PASSWORD"):
        monkeypatch.setenv(var, "example")
    config = load_config(EXAMPLE_DIR / example)
    assert config.cameras
