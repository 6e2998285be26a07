"""Local event log: camera offline/back, storage trouble (person events join with the detection issue).

Each event is committed before anything else happens with it, so it survives kill -9 and a power
cut; the MQTT link ships them through its outbox.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from edge_agent.events.ids import new_event_id

EVENTS_DB = "events.db"


@dataclass(frozen=True)
class LocalEvent:
    id: str
    kind: str  # camera_offline | camera_back | disk_full | ...
    camera: str | None
    time: float
    detail: dict[str, Any] = field(default_factory=dict)


class EventStore:
    """`on_saved` is called after each commit (the agent ships the event to the hub from there)."""

    def __init__(self, root: Path, on_saved: Callable[[LocalEvent], None] | None = None) -> None:
        self.on_saved = on_saved
        root.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(root / EVENTS_DB, check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        # Keep the write-ahead log small: it shares the disk (often an SD card) with the video.
        self.db.execute("PRAGMA wal_autocheckpoint=64")
        self.db.execute("PRAGMA journal_size_limit=262144")
        self.db.execute("PRAGMA synchronous=FULL")  # events are rare and must survive a power cut
        self._lock = threading.Lock()
        if "events" not in self.db.table_names():
            self.db.table("events").create(
                {"id": str, "kind": str, "camera": str, "time": float, "detail": str, "sent": int},
                pk="id",
            )
            self.db.table("events").create_index(["time"])

    def record(self, kind: str, camera: str | None, time: float, **detail: Any) -> LocalEvent:
        event = LocalEvent(new_event_id(time), kind, camera, time, detail)
        with self._lock, self.db.conn:
            self.db.table("events").insert(
                {
                    "id": event.id,
                    "kind": kind,
                    "camera": camera,
                    "time": time,
                    "detail": json.dumps(detail, sort_keys=True),
                    "sent": 0,
                }
            )
        if self.on_saved is not None:
            self.on_saved(event)
        return event

    def save(self, event: LocalEvent) -> None:
        """Insert or replace an event by id (a person event is saved at start, on updates and at end)."""
        with self._lock, self.db.conn:
            self.db.table("events").upsert(
                {
                    "id": event.id,
                    "kind": event.kind,
                    "camera": event.camera,
                    "time": event.time,
                    "detail": json.dumps(event.detail, sort_keys=True),
                    "sent": 0,
                },
                pk="id",
            )
        if self.on_saved is not None:
            self.on_saved(event)

    def mark_sent(self, event_id: str) -> None:
        with self._lock, self.db.conn:
            self.db.execute("update events set sent = 1 where id = ?", [event_id])

    def unsent(self) -> list[LocalEvent]:
        with self._lock:
            rows = list(self.db.query("select * from events where sent = 0 order by id"))
        return [LocalEvent(r["id"], r["kind"], r["camera"], r["time"], json.loads(r["detail"] or "{}")) for r in rows]

    def list(self, camera: str | None = None, kind: str | None = None) -> list[LocalEvent]:
        where, args = [], []
        if camera is not None:
            where.append("camera = ?")
            args.append(camera)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        sql = "select * from events" + (" where " + " and ".join(where) if where else "") + " order by id"
        with self._lock:
            return [
                LocalEvent(r["id"], r["kind"], r["camera"], r["time"], json.loads(r["detail"] or "{}"))
                for r in self.db.query(sql, args)
            ]

    def cameras(self) -> set[str | None]:
        with self._lock:
            return {r["camera"] for r in self.db.query("select distinct camera from events")}

    def prune(
        self, camera: str | None, before: float, keep: Sequence[tuple[float, float]], only_sent: bool = True
    ) -> int:
        """Delete the camera's events that ended before `before`, except those that overlap a `keep`
        window (legal holds) and, with `only_sent`, those the hub has not confirmed yet. None: the
        agent's own events (no camera).

        A person event ends at `detail.end`, which is null while it is still open: an open event is
        never pruned. An event without an end (camera offline, disk full) ends when it happens.
        The holds go in as one JSON parameter and are joined in the statement, so thousands of them
        cost one query (a clause per hold made the statement grow with the holds, past SQLite's
        limit on expression depth)."""
        # One DELETE (the sqlite3 module counts rows and opens the transaction only for a statement
        # that starts with DELETE, so the common table expressions sit inside it).
        sql = f"""
            delete from events where id in (
                with holds(first, last) as materialized (
                    select value ->> 0, value ->> 1 from json_each(:holds)
                ),
                aged(id, start, ended) as (
                    select id, time,
                           case when json_type(detail, '$.end') is null then time else detail ->> '$.end' end
                    from events
                    where camera is :camera and time < :before{" and sent = 1" if only_sent else ""}
                )
                select id from aged
                where ended < :before
                  and not exists (select 1 from holds where holds.first <= aged.ended and aged.start <= holds.last)
            )
        """
        args = {"camera": camera, "before": before, "holds": json.dumps([[start, end] for start, end in keep])}
        with self._lock, self.db.conn:
            return self.db.execute(sql, args).rowcount

    def close(self) -> None:
        self.db.conn.close()
