"""docs/mqtt.md is generated from the contract and stays in step with it; every example in it is
a valid message that survives decode -> encode unchanged."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import contract
from contract import decode, encode, parse_topic
from tests.conftest import REPO

DOC = REPO / "docs" / "mqtt.md"
# <!-- example Model topic --> followed by a ```json block (docs/gen_mqtt_doc.py writes them so).
EXAMPLE = re.compile(r"<!-- example (\w+) (\S+) -->\n```json\n(.*?)\n```", re.DOTALL)
KIND_MODEL = {
    "status": "Status",
    "heartbeat": "Heartbeat",
    "event": "Event",
    "cmd": "Command",
    "reply": "Reply",
    "acl": "AccessListPart",
}


def test_mqtt_doc_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "docs" / "gen_mqtt_doc.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr + "\nrun: .venv/bin/python docs/gen_mqtt_doc.py"


def examples() -> list[tuple[str, str, str]]:
    return [(m.group(1), m.group(2), m.group(3)) for m in EXAMPLE.finditer(DOC.read_text(encoding="utf-8"))]


def test_every_model_and_topic_kind_has_an_example() -> None:
    found = examples()
    assert {model for model, _, _ in found} == set(KIND_MODEL.values())
    assert {parse_topic(t).kind for _, t, _ in found} == set(KIND_MODEL)
    # Every ```json block outside the schemas is a checked example: none slipped past the marker.
    text = DOC.read_text(encoding="utf-8")
    blocks = text.count("```json\n")
    assert blocks == len(found) + text.count("<summary>JSON Schema of ")


@pytest.mark.parametrize(
    ("model_name", "topic", "body"), [pytest.param(*ex, id=f"{n}-{ex[0]}") for n, ex in enumerate(examples(), 1)]
)
def test_example_round_trips_through_the_contract(model_name: str, topic: str, body: str) -> None:
    info = parse_topic(topic)
    assert KIND_MODEL[info.kind] == model_name, "example under the wrong topic"
    model = getattr(contract, model_name)
    message = decode(model, body.encode("utf-8"))
    assert json.loads(encode(message)) == json.loads(body)
    # The wire form (compact) is what counts for the size limit.
    assert len(encode(message)) <= contract.MAX_PAYLOAD_BYTES
