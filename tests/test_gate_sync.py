"""Signed allow-lists, hub to gate, in one process: the hub's builder and signer
(hub/access_sync.py) against the gate's receiver (edge_agent/gate/sync.py) on real hub.db and
gate.db files. Forged, altered, replayed, out-of-sequence and empty lists are refused with a
reason and leave the gate's list as it was; a 10,000-card snapshot travels in parts under the
payload limit and is applied only when complete."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contract.access import AccessListPart
from contract.messages import MAX_PAYLOAD_BYTES, decode, encode
from edge_agent.gate.engine import Engine
from edge_agent.gate.store import DoorRow, list_version, open_db, put_door
from edge_agent.gate.sync import ListReceiver, ListRejected
from hub.access_sync import GateList, build_list, list_key, list_public_key, sign_list
from hub.models import CardIssue
from hub.services import audit, cards
from hub.store import connect, open_store
from tests.support.residents import fill_residents

DOOR = DoorRow("b07-east", "b07", "b07", "in", False)
NOW = 1_790_000_000.0


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    data_dir = tmp_path / "hub"
    data_dir.mkdir()
    open_store(data_dir / "hub.db")
    conn = connect(data_dir / "hub.db")
    cards.set_door(conn, audit.CLI, "lanxi", "b07-gate", "b07-east", "b07")
    yield data_dir, conn
    conn.close()


def resident(conn: sqlite3.Connection, n: int, building: str = "b07", **extra: object) -> int:
    body = CardIssue(
        employee_no=f"E{n:05d}",
        name=f"Resident {n}",
        building=building,
        room=str(100 + n % 400),
        card_number=f"{n // 65536 + 1}/{n % 65536}",
        card_format="wiegand26",
        **extra,  # type: ignore[arg-type]
    )
    return cards.issue(conn, audit.CLI, None, body).id


class Gate:
    def __init__(self, path: Path, key_b64: str) -> None:
        self.db = open_db(path)
        put_door(self.db, DOOR)
        self.rejected: list[ListRejected] = []
        self.receiver = ListReceiver(self.db, "lanxi", "b07-gate", key_b64, self.rejected.append)
        self.engine = Engine(self.db, {DOOR.name: DOOR}, "Asia/Shanghai")

    def feed(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            self.receiver.receive(payload)

    def decide(self, fc: int, number: int) -> str:
        return self.engine.decide(DOOR.name, (fc, number), NOW).reason

    def reasons(self) -> list[str]:
        return [r.reason for r in self.rejected]


def test_snapshot_then_revocation_delta_and_every_bad_list_refused(
    hub: tuple[Path, sqlite3.Connection], tmp_path: Path
) -> None:
    data_dir, conn = hub
    first, _, outsider = resident(conn, 1), resident(conn, 2), resident(conn, 3, building="b03")
    key = list_key(data_dir)
    gate = Gate(tmp_path / "gate.db", list_public_key(data_dir))
    snapshot = sign_list(key, build_list(conn, "lanxi", "b07-gate", None))
    gate.feed(snapshot)
    assert gate.rejected == []
    held = list_version(gate.db)
    assert held > 0
    assert gate.decide(1, 1) == "granted" and gate.decide(1, 2) == "granted"
    assert gate.decide(1, 3) == "unknown_card"  # b03's resident is not on b07's gate at all
    cards.set_state(conn, audit.CLI, None, first, "revoked")
    cards.set_state(conn, audit.CLI, None, outsider, "suspended")  # another building: not this gate's news
    delta_list = build_list(conn, "lanxi", "b07-gate", held)
    assert [e.raw for e in delta_list.entries] == ["1/1"]
    delta = sign_list(key, delta_list)
    gate.feed(delta)
    assert gate.rejected == [] and list_version(gate.db) == delta_list.version
    assert gate.decide(1, 1) == "revoked" and gate.decide(1, 2) == "granted"

    # Replays: the same delta again, the old snapshot again.
    gate.feed(delta)
    gate.feed(snapshot)
    # A list signed by another key; one whose body was changed after signing; one for another box.
    resident(conn, 4)
    later = build_list(conn, "lanxi", "b07-gate", delta_list.version)
    gate.feed(sign_list(Ed25519PrivateKey.generate(), later))
    part = json.loads(sign_list(key, later)[0])
    body = bytearray(base64.b64decode(part["data"]))
    body[-1] ^= 1
    part["data"] = base64.b64encode(bytes(body)).decode()
    gate.feed([json.dumps(part).encode()])
    other = GateList("lanxi", "other-gate", "delta", later.version, later.base, later.entries)
    gate.feed(sign_list(key, other))
    # A delta that skips a version; garbage on the topic.
    gate.feed(sign_list(key, build_list(conn, "lanxi", "b07-gate", delta_list.version + 1)))
    gate.feed([b"\x00garbage"])
    assert gate.reasons() == ["replayed", "replayed", "forged", "altered", "wrong_gate", "gap", "malformed"]
    assert list_version(gate.db) == delta_list.version
    assert gate.decide(1, 4) == "unknown_card"  # none of the refused lists slipped through
    # The good one still applies after all that.
    gate.feed(sign_list(key, later))
    assert gate.decide(1, 4) == "granted" and list_version(gate.db) == later.version
    # A delta from an older base (the hub went by a heartbeat sent before `later` arrived) overlaps
    # what the gate holds: each entry is a card's state, so it applies cleanly.
    cards.set_state(conn, audit.CLI, None, first + 1, "suspended")
    overlap = build_list(conn, "lanxi", "b07-gate", delta_list.version)
    gate.feed(sign_list(key, overlap))
    assert gate.reasons()[-1] == "malformed" and list_version(gate.db) == overlap.version
    assert gate.decide(1, 2) == "suspended" and gate.decide(1, 4) == "granted" and gate.decide(1, 1) == "revoked"


def test_an_empty_snapshot_never_empties_a_gate(hub: tuple[Path, sqlite3.Connection], tmp_path: Path) -> None:
    data_dir, conn = hub
    card = resident(conn, 1)
    key = list_key(data_dir)
    gate = Gate(tmp_path / "gate.db", list_public_key(data_dir))
    gate.feed(sign_list(key, build_list(conn, "lanxi", "b07-gate", None)))
    cards.set_state(conn, audit.CLI, None, card, "returned")
    empty = build_list(conn, "lanxi", "b07-gate", None)
    assert empty.entries == []
    gate.feed(sign_list(key, empty))
    assert gate.reasons() == ["empty_snapshot"] and gate.decide(1, 1) == "granted"
    # The delta that says the card was returned is the way it leaves the gate.
    gate.feed(sign_list(key, build_list(conn, "lanxi", "b07-gate", list_version(gate.db))))
    assert gate.decide(1, 1) == "unknown_card"


def test_ten_thousand_cards_travel_in_parts_and_apply_only_when_complete(
    hub: tuple[Path, sqlite3.Connection], tmp_path: Path
) -> None:
    data_dir, conn = hub
    fill_residents(conn, 10_000)
    payloads = sign_list(list_key(data_dir), build_list(conn, "lanxi", "b07-gate", None))
    assert len(payloads) > 1 and all(len(p) <= MAX_PAYLOAD_BYTES for p in payloads)
    assert [decode(AccessListPart, p).part for p in payloads] == list(range(len(payloads)))
    gate = Gate(tmp_path / "gate.db", list_public_key(data_dir))
    gate.feed(list(reversed(payloads[1:])))  # out of order, one missing: nothing applied yet
    assert list_version(gate.db) == 0 and gate.decide(1, 5) == "unknown_card"
    gate.feed(payloads[:1])
    assert gate.rejected == []
    assert gate.db.execute("SELECT count(*) FROM credentials").fetchone()[0] == 10_000
    assert gate.decide(1, 5) == "granted"
    assert encode(decode(AccessListPart, payloads[0])) == payloads[0]
