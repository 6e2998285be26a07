"""Hostile input at the hub: one device's message must never stop ingest for the others.

The cases are the ones a hostile tester found (a lone surrogate, a 64-bit overflow, NaN and
out-of-range times, coerced types, a 130-bit "ULID", deep nesting, huge integers, a snapshot for
an event the hub never had), then a property-based run over generated payloads, and the first
case end to end through a real Mosquitto and a real hub process that is restarted.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from contract import Event, encode, topic
from edge_agent.events.ids import new_event_id
from hub.db import HubDB
from hub.migrations import latest, schema_version
from hub.parse import parse_message
from hub.records import Record
from tests.conftest import wait_for
from tests.support.brokers import Broker
from tests.test_hub import WAIT, HubProcess, event, hub_cmd, hub_config, write_config

GOOD_ID = "01JA2B3C4D5E6F7G8H9J0K1M2N"
NOW = 1_760_000_000.0


def raw_event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"v": 1, "id": GOOD_ID, "kind": "test", "phase": "instant", "time": NOW}
    base.update(changes)
    return base


def as_bytes(payload: dict[str, Any] | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


POISON: list[tuple[str, str, dict[str, Any] | bytes, str]] = [
    # (test id, kind, payload, the words the rejection must contain)
    ("lone surrogate in detail", "event", raw_event(detail={"s": "\ud800"}), "lone surrogate"),
    ("seq over 64 bits", "event", raw_event(seq=9223372036854775808), "seq"),
    (
        "lone surrogate in agent_version",
        "status",
        {"v": 1, "state": "online", "time": NOW, "agent_version": "\ud800"},
        "lone surrogate",
    ),
    (
        "NaN time",
        "event",
        b'{"v":1,"id":"' + GOOD_ID.encode() + b'","kind":"test","phase":"instant","time":NaN}',
        "not JSON",
    ),
    (
        "Infinity time",
        "event",
        b'{"v":1,"id":"' + GOOD_ID.encode() + b'","kind":"test","phase":"instant","time":1e999}',
        "time",
    ),
    ("time 1e15", "event", raw_event(time=1e15), "time"),
    ("time -1e12", "event", raw_event(time=-1e12), "time"),
    ("time year 10000", "event", raw_event(time=253402300800), "time"),
    ("time 1 (1970)", "event", raw_event(time=1), "time"),
    ("seq as a string", "event", raw_event(seq="0"), "seq"),
    ("seq as a bool", "event", raw_event(seq=True), "seq"),
    ("test as a string", "event", raw_event(test="yes"), "test"),
    ("ULID over 128 bits", "event", raw_event(id="XXXXXXXXXXXXXXXXXXXXXXXXXX"), "id"),
    ("5000 deep", "event", b'{"v":1,"detail":' + b"[" * 5000 + b"]" * 5000 + b"}", "not JSON"),
    ("5000-digit integer", "event", b'{"v":1,"detail":{"n":' + b"7" * 5000 + b"}}", "not JSON"),
    ("detail 20 deep", "event", raw_event(detail=json.loads('{"a":' * 20 + "1" + "}" * 20)), "deeper"),
    ("integer over 64 bits in detail", "event", raw_event(detail={"n": 2**70}), "64 bits"),
    ("version true", "event", raw_event(v=True), "version"),
    ("heartbeat time NaN-free but 1e300", "heartbeat", {"v": 1, "time": 1e300, "uptime_seconds": 1}, "time"),
    ("reply with out-of-range time", "reply", {"v": 1, "id": "c1", "ok": True, "time": -5}, "time"),
]


@pytest.mark.parametrize(("name", "kind", "payload", "words"), POISON, ids=[p[0] for p in POISON])
def test_poison_is_rejected_with_a_cause_and_never_raises(name: str, kind: str, payload: Any, words: str) -> None:
    record = parse_message(topic("s1", "bad", kind), as_bytes(payload), False, NOW, 65536)
    assert (record.kind, record.site, record.device) == ("rejection", "s1", "bad"), record
    assert record.cause in ("malformed", "invalid", "version")
    assert record.error is not None and words in record.error, record.error


def test_a_valid_event_still_passes() -> None:
    """The other side of every case above: the strict contract still takes what agents send."""
    ev = event()
    record = parse_message(topic("s1", "d1", "event"), encode(ev), False, NOW, 65536)
    assert record.kind == "event" and record.message == ev
    loose_detail = raw_event(detail={"score": 0.9, "box": [1, 2, 3, 4], "nested": {"a": [{"b": None}]}}, time=NOW)
    assert parse_message(topic("s1", "d1", "event"), as_bytes(loose_detail), False, NOW, 65536).kind == "event"


def smuggled_event(detail: dict[str, Any], eid: str | None = None) -> Event:
    """An event the contract would refuse, built past it: the database's own net must hold."""
    return Event.model_construct(
        v=1,
        id=eid or new_event_id(),
        seq=0,
        kind="test",
        phase="instant",
        camera=None,
        time=NOW,
        end=None,
        test=False,
        detail=detail,
        snapshot=None,
    )


def test_a_record_the_database_refuses_is_set_aside_and_the_batch_commits(tmp_path: Path) -> None:
    db = HubDB(tmp_path / "hub.db")
    good = [Record("event", "s1", "good", NOW, message=event()) for _ in range(3)]
    bad = Record("event", "s1", "bad", NOW, message=smuggled_event({"s": "\ud800"}))
    nan = Record("event", "s1", "bad", NOW, message=smuggled_event({}).model_copy(update={"time": float("nan")}))
    result = db.write([good[0], bad, good[1], nan, good[2]])
    assert result.changed == good
    assert result.set_aside == [bad, nan]
    assert [r["id"] for r in db.events()] == [r.message.id for r in good if r.message is not None]
    letters = db.dead_letters()
    assert len(letters) == 2 and {r["device"] for r in letters} == {"bad"}
    assert "\\ud800" in letters[1]["message"] and "UnicodeEncodeError" in letters[1]["error"]
    assert "NOT NULL" in letters[0]["error"]  # NaN became NULL: refused, not silently ignored
    counts = {(r["device"], r["cause"]): r["count"] for r in db.rejections()}
    assert counts == {("bad", "unstorable"): 2}
    # The next batch is not held up by anything.
    more = Record("event", "s1", "good", NOW, message=event())
    assert db.write([more]).changed == [more]
    db.close()


def test_dead_letters_are_bounded(tmp_path: Path) -> None:
    db = HubDB(tmp_path / "hub.db", max_dead_letters=10)
    for _ in range(3):
        db.write([Record("event", "s1", "bad", NOW, message=smuggled_event({"s": "\udfff"})) for _ in range(7)])
    assert len(db.dead_letters()) == 10
    assert {r["count"] for r in db.rejections()} == {21}
    db.close()


def test_a_snapshot_needs_its_own_devices_event(tmp_path: Path) -> None:
    db = HubDB(tmp_path / "hub.db")
    jpeg = b"\xff\xd8\xff" + b"x" * 100 + b"\xff\xd9"
    ev = event()
    orphan = Record("snapshot", "s1", "d1", NOW, name=GOOD_ID, data=jpeg)
    other_device = Record("snapshot", "s1", "d2", NOW, name=ev.id, data=jpeg)
    own = [Record("event", "s1", "d1", NOW, message=ev), Record("snapshot", "s1", "d1", NOW, name=ev.id, data=jpeg)]
    result = db.write([orphan, other_device, *own])
    assert result.changed[-2:] == own
    assert [(r.device, r.cause) for r in result.rejected] == [("d1", "orphan"), ("d2", "orphan")]
    assert not (tmp_path / "snapshots" / "s1" / "d1" / f"{GOOD_ID}.jpg").exists()
    assert not (tmp_path / "snapshots" / "s1" / "d2").exists()
    assert (tmp_path / "snapshots" / "s1" / "d1" / f"{ev.id}.jpg").read_bytes() == jpeg
    db.close()


def test_events_list_survives_a_stored_time_no_calendar_holds(tmp_path: Path) -> None:
    """Rows stored before the contract bounded times must not break the listing for everyone."""
    config = hub_config(tmp_path, "mqtt://127.0.0.1:1883", "v5")
    path = write_config(tmp_path, config)
    db = HubDB(config.db_path)
    db.write([Record("event", "s1", "d1", NOW, message=event())])
    db.conn.execute("UPDATE events SET time = 1e15")
    db.conn.commit()
    db.close()
    done = subprocess.run(hub_cmd("events", "list", "--config", str(path), "--json"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["time"] == "1000000000000000.0 (not a date)"


OLD_SCHEMA = """
CREATE TABLE "events" ("id" TEXT, "phase" TEXT, "seq" INTEGER, "site" TEXT NOT NULL, "device" TEXT NOT NULL,
  "camera" TEXT, "kind" TEXT NOT NULL, "time" REAL NOT NULL, "end" REAL, "test" INTEGER NOT NULL, "detail" TEXT,
  "snapshot" TEXT, "received" REAL NOT NULL, PRIMARY KEY ("id", "phase", "seq"));
CREATE TABLE "rejections" ("site" TEXT, "device" TEXT, "cause" TEXT, "count" INTEGER, "first_seen" REAL,
  "last_seen" REAL, "last_error" TEXT, "last_topic" TEXT, PRIMARY KEY ("site", "device", "cause"));
INSERT INTO events VALUES ('01JA2B3C4D5E6F7G8H9J0K1M2N', 'instant', 0, 's1', 'd1', NULL, 'test', 1760000000.0, NULL,
  0, '{}', NULL, 1760000000.0);
"""


def test_a_hub_db_from_before_schema_versions_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    old = sqlite3.connect(path)
    old.executescript(OLD_SCHEMA)
    old.close()
    db = HubDB(path)
    assert schema_version(db.conn) == latest() >= 2
    assert [r["id"] for r in db.events()] == [GOOD_ID]
    assert db.dead_letters() == []
    db.close()
    again = HubDB(path)
    assert again.applied == []  # nothing to do the second time
    again.close()


def test_a_hub_db_newer_than_the_hub_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    config = hub_config(tmp_path, "mqtt://127.0.0.1:1883", "v5")
    path = write_config(tmp_path, config)
    HubDB(config.db_path).close()
    conn = sqlite3.connect(config.db_path)
    conn.execute(f"PRAGMA user_version = {latest() + 5}")
    conn.close()
    done = subprocess.run(hub_cmd("events", "list", "--config", str(path)), capture_output=True, text=True)
    assert done.returncode != 0
    assert "newer than this hub" in done.stderr and "Traceback" not in done.stderr


# --- generated payloads -----------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(
    ["v", "id", "seq", "kind", "phase", "camera", "time", "end", "test", "detail", "snapshot"]
)
mutated_events = st.builds(lambda changes: raw_event(**changes), st.dictionaries(field_names, json_values, max_size=4))
hostile_payloads = st.one_of(
    mutated_events.map(lambda d: json.dumps(d, allow_nan=True).encode("utf-8", "surrogatepass")),
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
kinds = st.sampled_from(["event", "status", "heartbeat", "reply", "snapshot/" + GOOD_ID])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(kinds, hostile_payloads), min_size=1, max_size=8), st.integers(1, 3))
def test_generated_payloads_never_stop_good_events_from_another_device(
    tmp_path_factory: pytest.TempPathFactory, hostile: list[tuple[str, bytes]], good_count: int
) -> None:
    path = tmp_path_factory.mktemp("hub") / "hub.db"
    good = [parse_message(topic("s1", "good", "event"), encode(event()), False, NOW, 65536) for _ in range(good_count)]
    bad = [parse_message(f"diaolou/v1/s1/bad/{kind}", payload, False, NOW, 65536) for kind, payload in hostile]
    batch = [*bad[: len(bad) // 2], *good, *bad[len(bad) // 2 :]]
    db = HubDB(path)
    db.write(batch)
    db.close()
    # A restart: the broker delivers the unacknowledged batch again to a fresh hub.
    db = HubDB(path)
    db.write(batch)
    stored = [r for r in db.events() if r["device"] == "good"]
    assert sorted(r["id"] for r in stored) == sorted(g.message.id for g in good if g.message is not None)
    for row in db.events():  # whatever was stored can be read back and shown
        assert row["time"] is not None
    db.close()


# --- end to end: Mosquitto, a hub process, a restart ------------------------------------------
def publish_all(broker: Broker, client_id: str, messages: list[tuple[str, bytes, bool]]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for name, payload, retain in messages:
            info = client.publish(name, payload, qos=1, retain=retain)
            info.wait_for_publish(WAIT)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def test_poison_from_one_box_never_stops_the_hub_for_the_others(mosquitto: Broker, tmp_path: Path) -> None:
    config = hub_config(tmp_path, mosquitto.url(), mosquitto.protocol)
    hub = HubProcess(write_config(tmp_path, config), tmp_path / "hub.log").start()
    reader = HubDB(config.db_path)
    poison = [
        (topic("s1", "probe", "event"), as_bytes(raw_event(id=new_event_id(), detail={"s": "\ud800"})), False),
        (topic("s1", "probe", "event"), as_bytes(raw_event(id=new_event_id(), seq=9223372036854775808)), False),
        (
            topic("s1", "probe", "status"),
            as_bytes({"v": 1, "state": "online", "time": NOW, "agent_version": "\ud800"}),
            True,
        ),
        (topic("s1", "probe", "event"), as_bytes(raw_event(id=new_event_id(), time=1e15)), False),
    ]

    def good_ids_stored() -> list[str]:
        return [r["id"] for r in reader.events(device="good")]

    try:
        first = [event() for _ in range(3)]
        publish_all(mosquitto, "probe", poison)
        publish_all(mosquitto, "good", [(topic("s1", "good", "event"), encode(e), False) for e in first])
        assert wait_for(lambda: good_ids_stored() == [e.id for e in first], WAIT), hub.log_path.read_text()
        assert hub.terminate() == 0
        # Restarted: the retained poisoned status is delivered again on subscribe; ingest goes on.
        hub.start()
        second = [event() for _ in range(3)]
        publish_all(mosquitto, "good", [(topic("s1", "good", "event"), encode(e), False) for e in second])
        assert wait_for(lambda: good_ids_stored() == [e.id for e in first + second], WAIT), hub.log_path.read_text()
        assert reader.events(device="probe") == []
        causes = {r["cause"]: r["count"] for r in reader.rejections() if r["device"] == "probe"}
        assert causes.get("malformed", 0) >= 2 and causes.get("invalid", 0) >= 2, causes
        assert "cannot commit" not in hub.log_path.read_text()
        done = subprocess.run(
            hub_cmd("events", "list", "--config", str(hub.config_path), "--json"), capture_output=True, text=True
        )
        assert done.returncode == 0 and len(done.stdout.splitlines()) == 6, done.stderr
    finally:
        reader.close()
        if hub.proc is not None and hub.proc.poll() is None:
            hub.terminate()


def test_dead_letters_command_lists_what_was_set_aside(tmp_path: Path) -> None:
    config = hub_config(tmp_path, "mqtt://127.0.0.1:1883", "v5")
    path = write_config(tmp_path, config)
    db = HubDB(config.db_path)
    db.write([Record("event", "s1", "bad", NOW, message=smuggled_event({"s": "\ud800"}))])
    db.close()
    done = subprocess.run(
        [sys.executable, "-m", "hub", "dead-letters", "--config", str(path), "--json"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["device"] == "bad" and row["kind"] == "event" and "UnicodeEncodeError" in row["error"]
