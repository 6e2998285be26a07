"""The shape of the tree: the agent and the hub never import each other, the neutral packages
beneath them import neither, and each side loads only the heavy libraries it runs (a hub box
has no video or ML stack; a camera box has no web stack). Every module of each package is
imported in a fresh interpreter, so a lazy import inside a function counts too only when
imported at module level: that is the rule the layout relies on."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = """
import importlib, json, pkgutil, sys
root = sys.argv[1]
package = importlib.import_module(root)
for info in pkgutil.walk_packages(package.__path__, root + "."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""

# What each package must never load: the other side, and the other side's heavy stack.
FORBIDDEN = {
    "edge_agent": {"hub", "demo", "fastapi", "uvicorn", "starlette", "jinja2", "amqtt"},
    "hub": {"edge_agent", "demo", "cv2", "onnxruntime", "av", "onnx"},
    "common": {"edge_agent", "hub", "demo", "contract", "cv2", "onnxruntime", "av", "fastapi", "paho"},
    "contract": {"edge_agent", "hub", "demo", "common", "cv2", "onnxruntime", "av", "fastapi", "paho"},
    "models": {"edge_agent", "hub", "demo", "fastapi", "uvicorn"},
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_loads_nothing_it_must_not(package: str) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, package], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert package in loaded
    assert not loaded & FORBIDDEN[package], f"{package} loads {sorted(loaded & FORBIDDEN[package])}"


def test_modules_stay_under_500_lines() -> None:
    too_long = []
    for package in ("edge_agent", "hub", "common", "contract", "models", "demo"):
        for path in (REPO / package).rglob("*.py"):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > 500:
                too_long.append(f"{path.relative_to(REPO)}: {lines}")
    assert not too_long, too_long
