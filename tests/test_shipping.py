"""From the tracker to the outbox, one message: person events the real pipeline makes (tracker,
event builder, snapshot writer, `save_change`) are saved in events.db and queued by the store's
shipper exactly as they were made (`label` included); events saved while nothing could queue
them are queued by `queue_pending`; an events.db of the old flat-dict shape is migrated in
place and its rows still load and ship; test alarms go through events.db like real alerts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import sqlite_utils

from contract import Event, decode, topic
from contract.topics import parse_topic
from edge_agent.analysis import save_change
from edge_agent.comms.outbox import Outbox
from edge_agent.comms.shipping import EventShipper
from edge_agent.comms.test_alarm import send_test_alarms
from edge_agent.comms.writer import OutboxWriter
from edge_agent.config.schema import AgentConfig, DetectConfig
from edge_agent.detectors.base import Box, Detection
from edge_agent.events.ids import new_event_id
from edge_agent.events.local import LocalEvent
from edge_agent.events.store import EventStore
from edge_agent.pipeline import CameraAnalyzer
from tests.conftest import free_port

SITE, DEVICE = "lane3", "box1"
T0 = 1_780_000_000.0  # 2026-05-28
PRE_ROLL, POST_ROLL = 5.0, 5.0


class PaintedPersonDetector:
    """Finds the red rectangle the test paints as a person in whatever crop it is given."""

    name = "painted"

    def detect(self, image: np.ndarray) -> list[Detection]:
        ys, xs = np.nonzero(image[..., 2] > 200)
        if len(xs) < 50:
            return []
        return [Detection(Box(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), 0.87, "person")]


def street(rng: np.random.Generator, x: int | None) -> np.ndarray:
    img = np.full((360, 640, 3), 150, np.uint8)
    img[200:, :] = 60
    img = np.clip(img + rng.normal(0, 2, img.shape[:2])[..., None], 0, 255).astype(np.uint8)
    if x is not None:
        img[120:300, x : x + 50] = (40, 60, 230)
    return img


def pipeline_events(root: Path, store: EventStore) -> list[LocalEvent]:
    """A person walks across the camera's view and leaves: what the analysis saves, in order."""
    analyzer = CameraAnalyzer("gate", DetectConfig(end_after_seconds=2.0), PaintedPersonDetector(), "UTC")
    rng = np.random.default_rng(7)
    walk: list[int | None] = [None] * 10 + [60 + 12 * k for k in range(40)] + [None] * 30
    saved = []
    for i, x in enumerate(walk):
        for change in analyzer.process(street(rng, x), T0 + i / 5).changes:
            saved.append(save_change(root, store, change, PRE_ROLL, POST_ROLL))
    return saved


def outbox_messages(outbox: Outbox) -> list[tuple[str, bytes]]:
    return [(row.topic, row.payload) for row in outbox.pending(limit=1000)]


def test_pipeline_events_reach_the_outbox_as_they_were_made(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    outbox = Outbox.at(root)
    store = EventStore(root, EventShipper(OutboxWriter(outbox, SITE, DEVICE), root))
    saved = pipeline_events(root, store)

    phases = [e.message.phase for e in saved]
    assert phases[0] == "new" and phases[-1] == "end" and set(phases[1:-1]) <= {"update"}
    assert [e.message.seq for e in saved] == list(range(len(saved)))
    assert len({e.id for e in saved}) == 1
    end = saved[-1]
    person = end.person
    assert person is not None and person.label == "person" and person.model == "painted"
    assert person.max_score == 0.87 and person.persons == 1 and person.zone is None
    assert person.clip is not None and person.clip.start == end.time - PRE_ROLL
    assert end.message.end is not None and person.clip.end == end.message.end + POST_ROLL
    assert end.message.snapshot is not None and (root / end.message.snapshot.path).is_file()

    rows = outbox_messages(outbox)
    wire = [decode(Event, payload) for name, payload in rows if parse_topic(name).kind == "event"]
    assert wire == [e.message for e in saved]  # every version, exactly as made: nothing picked out
    assert wire[-1].detail["label"] == "person"  # the old key set dropped it
    snapshots = [name for name, _ in rows if parse_topic(name).kind == "snapshot"]
    assert snapshots == [topic(SITE, DEVICE, "snapshot", end.id)] * 2  # at the start and at the end
    assert store.pending() == []  # all queued
    assert store.list(camera="gate") == [end]  # one row per event: its latest version
    store.close()
    outbox.close()


def test_events_that_never_reached_the_outbox_are_queued_at_start(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    unshipped = EventStore(root)  # saved, then the process died before the outbox commit
    saved = pipeline_events(root, unshipped)
    offline = unshipped.record("camera_offline", "gate", T0 + 30, reason="no route to host", state="offline")
    unshipped.close()

    outbox = Outbox.at(root)
    store = EventStore(root, EventShipper(OutboxWriter(outbox, SITE, DEVICE), root))
    assert store.pending() == [saved[-1], offline]
    assert store.queue_pending() == 2
    assert store.pending() == [] and store.queue_pending() == 0
    wire = [decode(Event, p) for name, p in outbox_messages(outbox) if parse_topic(name).kind == "event"]
    assert wire == [saved[-1].message, offline.message]
    assert wire[1].detail == {"reason": "no route to host", "state": "offline"} and wire[1].phase == "instant"
    store.close()
    outbox.close()


def test_an_old_events_db_is_migrated_in_place_and_its_rows_load_and_ship(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    root.mkdir()
    old = sqlite_utils.Database(root / "events.db")  # the schema and rows of before
    old["events"].create({"id": str, "kind": str, "camera": str, "time": float, "detail": str, "sent": int}, pk="id")
    old["events"].create_index(["time"])
    person_id, offline_id, broken_id = (new_event_id(T0 + n) for n in range(3))
    old_detail = {
        "id": person_id, "camera": "gate", "zone": "door", "label": "person", "start": T0, "end": T0 + 12.5,
        "max_score": 0.91, "persons": 2, "model": "yolox-nano", "phase": "end", "seq": 4,
        "clip": {"start": T0 - 5, "end": T0 + 17.5},
        "snapshot": "snapshots/gate/2026-05-28/p.jpg", "snapshot_crop": "snapshots/gate/2026-05-28/p-crop.jpg",
    }  # fmt: skip
    old["events"].insert_all(
        [
            {
                "id": person_id,
                "kind": "person",
                "camera": "gate",
                "time": T0,
                "detail": json.dumps(old_detail),
                "sent": 0,
            },
            {"id": offline_id, "kind": "camera_offline", "camera": "gate", "time": T0 + 1, "detail": "{}", "sent": 1},
            {"id": broken_id, "kind": "parade", "camera": "gate", "time": T0 + 2, "detail": "{}", "sent": 0},
        ]
    )
    old.conn.close()

    outbox = Outbox.at(root)
    store = EventStore(root, EventShipper(OutboxWriter(outbox, SITE, DEVICE), root))
    person, offline = store.list()
    assert (person.id, offline.id) == (person_id, offline_id)
    assert person.message.model_dump(exclude={"detail"}) == {
        "v": 1, "id": person_id, "seq": 4, "kind": "person", "phase": "end", "camera": "gate", "time": T0,
        "end": T0 + 12.5, "test": False,
        "snapshot": {"path": old_detail["snapshot"], "crop": old_detail["snapshot_crop"]},
    }  # fmt: skip
    assert person.person is not None and person.person.label == "person" and person.person.zone == "door"
    kept = ("zone", "label", "max_score", "persons", "model", "clip")  # what the hub reads in detail
    assert person.message.detail == {key: old_detail[key] for key in kept}
    assert offline.message.phase == "instant" and offline.ended == T0 + 1

    assert store.pending() == [person]  # `sent` became `queued`: the offline event was queued already
    assert store.queue_pending() == 1
    (name, payload), *_ = outbox_messages(outbox)  # the snapshot file is gone: only the event
    assert name == topic(SITE, DEVICE, "event") and decode(Event, payload) == person.message
    assert decode(Event, payload).detail["label"] == "person"
    # The unreadable row is set aside with its reason, not lost and not in the way.
    with sqlite3.connect(root / "events.db") as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(events)")]
        aside = conn.execute("SELECT id, reason FROM unreadable_events").fetchall()
    assert "detail" not in columns and "sent" not in columns and "queued" in columns
    assert [a[0] for a in aside] == [broken_id] and "kind" in aside[0][1]
    # Retention reads the migrated end: the person event ended at T0 + 12.5.
    assert store.prune("gate", T0 + 12, []) == 1 and [e.id for e in store.list()] == [person_id]
    assert store.prune("gate", T0 + 13, []) == 1 and store.list() == []
    store.close()
    outbox.close()
    EventStore(root).close()  # opening it again: nothing left to migrate


def test_test_alarms_are_saved_in_events_db_marked_test_like_a_real_alert(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    dead = f"mqtt://127.0.0.1:{free_port()}"  # nobody listens: the alarms stay in the outbox
    config = AgentConfig.model_validate(
        {"site": SITE, "device": DEVICE, "storage": {"root": str(root)}, "mqtt": {"url": dead}}
    )
    result = send_test_alarms(config, count=2, wait_seconds=0.5)
    assert result.sent == 2 and result.acked == 0 and result.queued == 2
    store = EventStore(root)
    stored = store.list(kind="test")
    assert [e.id for e in stored] == result.event_ids
    assert all(e.message.test and e.message.phase == "instant" and e.camera is None for e in stored)
    assert store.pending() == []  # queued: in outbox.db
    with Outbox.at(root) as outbox:
        wire = [decode(Event, p) for _, p in outbox_messages(outbox)]
    assert wire == [e.message for e in stored]
    store.close()
