"""Hub ingest under bursts: a bounded receive queue that holds the broker back instead of growing,
nothing lost or stored twice, and heartbeats that share commits (hub/ingest.py).

Real brokers and a real database; the database is slowed by a gate where a test needs the writer
to fall behind. Speed itself is measured in bench/hub_ingest.py, not here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contract import Heartbeat, Status, encode, topic
from hub.config import ConfigError, parse_hub_config
from hub.db import HubDB, WriteResult
from hub.ingest import Ingest
from hub.records import Record
from tests.conftest import wait_for
from tests.support.brokers import Broker
from tests.test_hub import WAIT, Publisher, event, hub_config

# A burst is timed in real time.
pytestmark = pytest.mark.exclusive


class GatedDB(HubDB):
    """A HubDB whose writes wait at a gate while it is closed: the writer falls behind at will."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.gate.set()
        self.writing = threading.Event()  # a write is waiting at the closed gate

    def write(self, records: Any) -> WriteResult:
        if not self.gate.is_set():
            self.writing.set()
            self.gate.wait()
        return super().write(records)


@contextmanager
def running(config: Any, db: HubDB) -> Iterator[Ingest]:
    ingest = Ingest(config, db)
    ingest.start()
    try:
        assert ingest.wait_subscribed(WAIT), "hub did not subscribe"
        yield ingest
    finally:
        if isinstance(db, GatedDB):
            db.gate.set()
        ingest.stop()


def stored_ids(config: Any) -> list[str]:
    reader = HubDB(config.db_path)
    try:
        return [row["id"] for row in reader.events()]
    finally:
        reader.close()


def heartbeat(n: int = 0) -> bytes:
    return encode(Heartbeat(time=1.7e9 + n, uptime_seconds=n))


def test_a_burst_is_held_back_at_the_socket_and_stored_once(broker: Broker, tmp_path: Path) -> None:
    config = hub_config(
        tmp_path, broker.url(), broker.protocol, ingest={"batch_max_messages": 10, "queue_max_messages": 20}
    )
    db = GatedDB(config.db_path)
    db.gate.clear()
    with running(config, db) as ingest:
        publishers = [Publisher(broker.port, broker.protocol, f"burst-{i}") for i in range(3)]
        sent: list[str] = []
        try:
            for n in range(300):
                ev = event()
                publishers[n % 3].publish(topic("s1", f"d{n % 3}", "event"), encode(ev))
                sent.append(ev.id)
            # The writer is stuck: 20 messages wait and the network thread waits with the 21st.
            assert db.writing.wait(WAIT)
            assert wait_for(lambda: ingest.stats.received == 21, WAIT, interval=0.02)
            assert ingest.stats.queue_peak == 20
            db.gate.set()
            assert wait_for(lambda: len(stored_ids(config)) >= 300, WAIT)
        finally:
            for p in publishers:
                p.close()
        ids = stored_ids(config)
        assert sorted(ids) == sorted(sent)  # every event, each once
        for device in ("d0", "d1", "d2"):  # and in order per device
            mine = [i for n, i in enumerate(sent) if n % 3 == int(device[1])]
            assert [i for i in ids if i in set(mine)] == mine
        assert ingest.stats.queue_peak == 20  # never more held than the bound
        assert ingest.stats.held_back_seconds > 0
        assert ingest.stats.duplicates == 0
    db.close()


def test_a_hub_stopped_while_holding_back_loses_nothing(mosquitto: Broker, tmp_path: Path) -> None:
    """What the network thread was holding back when the hub stopped is not acknowledged: the
    broker keeps it in the hub's session and hands it to the next run."""
    config = hub_config(
        tmp_path, mosquitto.url(), mosquitto.protocol, ingest={"batch_max_messages": 5, "queue_max_messages": 5}
    )
    db = GatedDB(config.db_path)
    db.gate.clear()
    ingest = Ingest(config, db)
    ingest.start()
    sent: list[str] = []
    try:
        assert ingest.wait_subscribed(WAIT)
        pub = Publisher(mosquitto.port, mosquitto.protocol, "agent-stop")
        try:
            for _ in range(40):
                ev = event()
                pub.publish(topic("s1", "d1", "event"), encode(ev))
                sent.append(ev.id)
        finally:
            pub.close()
        assert db.writing.wait(WAIT)
        assert wait_for(lambda: ingest.stats.received == 6, WAIT, interval=0.02)  # 5 held, 1 waiting
        stopper = threading.Thread(target=ingest.stop)
        stopper.start()
        db.gate.set()  # the batch at the gate commits; the stop releases the waiting message unstored
        stopper.join(WAIT)
        assert not stopper.is_alive()
    finally:
        db.gate.set()
        db.close()
    assert 0 < len(stored_ids(config)) < 40
    second = HubDB(config.db_path)
    with running(config, second):
        assert wait_for(lambda: len(stored_ids(config)) >= 40, WAIT)
        # All, once, in order. (Mosquitto may deliver a few acknowledged ones again: the key absorbs them.)
        assert stored_ids(config) == sent
    second.close()


def test_sparse_heartbeats_share_a_commit(mosquitto: Broker, tmp_path: Path) -> None:
    """Boxes beat at their own moments: without a window each heartbeat, alone in its
    millisecond, was a commit of its own."""
    config = hub_config(tmp_path, mosquitto.url(), mosquitto.protocol, ingest={"heartbeat_batch_ms": 10_000})
    db = HubDB(config.db_path)
    with running(config, db) as ingest:
        pub = Publisher(mosquitto.port, mosquitto.protocol, "beats")
        try:
            for n in range(20):
                pub.publish(topic("s1", f"box{n}", "heartbeat"), heartbeat(n), qos=0)
                time.sleep(
                    0.02
                )  # pacing, like boxes beating at their own moments (a batch of events closes after 1 ms)
            # The marker comes after them on the same connection, so it arrives after them.
            marker = encode(Status(state="online", time=1.7e9))
            pub.publish(topic("s1", "marker", "status"), marker, qos=1)
        finally:
            pub.close()
        reader = HubDB(config.db_path)
        try:
            assert wait_for(lambda: reader.device("s1", "marker") is not None, WAIT)
            beats = [d for d in reader.devices() if d["device"].startswith("box")]
        finally:
            reader.close()
        assert len(beats) == 20 and all(d["last_heartbeat"] is not None for d in beats)
        # One commit if the marker closed the heartbeats' batch, two if the window closed it first.
        assert ingest.stats.commits <= 2
    db.close()


def test_an_event_does_not_wait_for_the_heartbeat_window(mosquitto: Broker, tmp_path: Path) -> None:
    config = hub_config(tmp_path, mosquitto.url(), mosquitto.protocol, ingest={"heartbeat_batch_ms": 10_000})
    db = HubDB(config.db_path)
    committed: list[list[str]] = []
    real_write = db.write

    def write(records: list[Record]) -> WriteResult:
        result = real_write(records)
        committed.append([r.kind for r in records])
        return result

    db.write = write  # type: ignore[method-assign,assignment]
    with running(config, db):
        pub = Publisher(mosquitto.port, mosquitto.protocol, "box")
        try:
            began = time.monotonic()
            pub.publish(topic("s1", "box", "heartbeat"), heartbeat(), qos=0)
            ev = event()
            pub.publish(topic("s1", "box", "event"), encode(ev))
            assert wait_for(lambda: stored_ids(config) == [ev.id], WAIT, interval=0.02)
            # Not a speed limit: the window is 10 s, and an event waiting for it would take that long.
            assert time.monotonic() - began < 10.0
        finally:
            pub.close()
    # The event closed the heartbeat's batch: both went in its commit.
    assert committed[0] == ["heartbeat", "event"]
    db.close()


@pytest.mark.parametrize(
    ("ingest", "words"),
    [
        ({"batch_max_messages": 500, "queue_max_messages": 100}, "queue_max_messages (100) must be at least"),
        ({"heartbeat_batch_ms": -1}, "heartbeat_batch_ms"),
    ],
)
def test_ingest_limits_are_checked(tmp_path: Path, ingest: dict[str, Any], words: str) -> None:
    lines = ["ingest:"] + [f"  {key}: {value}" for key, value in ingest.items()]
    with pytest.raises(ConfigError) as err:
        parse_hub_config("\n".join(lines) + "\n", source="hub.yaml")
    assert "hub.yaml: ingest" in str(err.value)
    assert words in str(err.value)


def test_a_batch_stores_each_event_once_and_reports_only_new_ones_in_order(tmp_path: Path) -> None:
    """db.write inserts a batch's events in a few multi-row statements: a chunk holding a
    redelivery (stored in an earlier batch, or twice in this one) is written again row by row, so
    `changed` still lists exactly the new records, in arrival order."""
    db = HubDB(tmp_path / "hub.db")
    try:
        evs = [event() for _ in range(300)]
        records = [Record("event", "s1", f"d{n % 7}", 100.0 + n, message=ev) for n, ev in enumerate(evs)]
        earlier = [records[3], records[100], records[299]]
        assert db.write(earlier).changed == earlier
        status = Record("status", "s1", "d1", 50.0, message=Status(state="online", time=1.7e9))
        batch = [*records[:150], status, records[5], *records[150:]]  # records[5] twice in the batch
        inside: list[bool] = []  # for each statement of the write: was the batch's transaction open?
        db.conn.set_trace_callback(lambda sql: inside.append(db.conn.in_transaction))
        result = db.write(batch)
        db.conn.set_trace_callback(None)
        assert len(inside) > 10 and all(inside[1:])  # one transaction (a chunk is not committed alone)
        new = [r for r in records if r not in earlier]
        assert result.changed == [*new[:148], status, *new[148:]]
        rows = db.events()
        assert len(rows) == 300 and len({r["id"] for r in rows}) == 300
        first = (3, 100, 299)
        ids = [evs[n].id for n in first] + [ev.id for n, ev in enumerate(evs) if n not in first]
        assert [r["id"] for r in rows] == ids  # arrival order
        assert rows[-1]["detail"] == {"score": 0.9}
        assert rows[-1]["snapshot"] == {"path": "snapshots/x.jpg", "crop": None}
        assert db.write(batch).changed == [status]  # all of it again: only the status changes anything
        assert {d["device"] for d in db.devices()} == {f"d{n}" for n in range(7)}
    finally:
        db.close()


def test_a_snapshot_finds_its_event_from_the_same_batch(tmp_path: Path) -> None:
    db = HubDB(tmp_path / "hub.db")
    try:
        ev = event()
        jpeg = b"\xff\xd8\xff" + b"0" * 100 + b"\xff\xd9"
        records = [
            Record("event", "s1", "d1", 1.0, message=ev),
            Record("snapshot", "s1", "d1", 2.0, name=ev.id, data=jpeg),
        ]
        result = db.write(records)
        assert result.changed == records and not result.rejected
    finally:
        db.close()


def test_v5_message_properties_are_skipped_and_the_payload_kept(mosquitto: Broker, tmp_path: Path) -> None:
    """The hub's leaner PUBLISH decoder (hub.parse.HubClient) skips MQTT v5 properties a sender
    may attach; the payload after them is the message."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    config = hub_config(tmp_path, mosquitto.url(), "v5")
    db = HubDB(config.db_path)
    with running(config, db) as ingest:
        pub = Publisher(mosquitto.port, "v5", "props")
        try:
            sent = []
            for n in range(3):
                ev = event()
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.UserProperty = ("trace", "x" * (50 * n))  # 0, 50 and 100 bytes: lengths of 1 and 2 bytes
                props.MessageExpiryInterval = 3600
                props.ContentType = "application/json"
                info = pub.client.publish(topic("s1", "d1", "event"), encode(ev), qos=1, properties=props)
                info.wait_for_publish(WAIT)
                sent.append(ev.id)
        finally:
            pub.close()
        assert wait_for(lambda: stored_ids(config) == sent, WAIT)
        assert ingest.stats.rejected == 0
    db.close()
