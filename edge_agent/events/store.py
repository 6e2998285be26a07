"""Local event log (events.db): person events, camera offline/back, storage trouble, test alarms.

Each event is committed here before anything else happens with it, so it survives kill -9 and
a power cut. Then the store hands it to its shipper (given at construction; none on a box
without an MQTT link), which commits it to the outbox, and marks it `queued`. `queued` means
"in outbox.db", not "the hub has it": the outbox keeps it until the broker acknowledges it.
Events saved but not queued (a crash between the two commits: they are separate SQLite files,
or an outbox full of more important messages) are queued again by `queue_pending` when the
agent starts; the hub stores by (id, phase, seq), so queueing twice is harmless.

A row holds the event's wire message as JSON (`LocalEvent`) beside the columns the store
selects on. Files written before kept a flat `detail` dict and a `sent` flag: they are
migrated in place when opened.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlite_utils
from pydantic import ValidationError

from contract import Event
from contract.messages import EventKind
from edge_agent.events.local import LocalEvent, legacy_message

if TYPE_CHECKING:
    from edge_agent.comms.outbox import Added

__all__ = ["EVENTS_DB", "EventStore", "LocalEvent", "Shipper"]

log = logging.getLogger(__name__)

EVENTS_DB = "events.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    camera TEXT,
    time REAL NOT NULL,
    ended REAL,            -- retention: an instant event's time, a person event's end, NULL while open
    queued INTEGER NOT NULL DEFAULT 0,  -- committed to outbox.db (not: the hub has it)
    message TEXT NOT NULL  -- the wire Event as JSON
);
CREATE INDEX IF NOT EXISTS idx_events_time ON events (time)
"""


class Shipper(Protocol):
    def ship(self, event: LocalEvent) -> Added | None:
        """Commit the event's message to the outbox; what the outbox did (`Added.seq` None: it was
        dropped, the outbox being full of more important messages), None when it failed."""
        ...


class EventStore:
    def __init__(self, root: Path, shipper: Shipper | None = None) -> None:
        self.shipper = shipper
        root.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(root / EVENTS_DB, check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA journal_mode=WAL")
        # Keep the write-ahead log small: it shares the disk (often an SD card) with the video.
        self.db.execute("PRAGMA wal_autocheckpoint=64")
        self.db.execute("PRAGMA journal_size_limit=262144")
        self.db.execute("PRAGMA synchronous=FULL")  # events are rare and must survive a power cut
        self._lock = threading.Lock()
        with self._lock:
            self._migrate()
            with conn:
                for statement in _SCHEMA.split(";"):
                    conn.execute(statement)

    def record(self, kind: EventKind, camera: str | None, time: float, **detail: Any) -> LocalEvent:
        """Save an instant event (camera offline or back, disk full)."""
        event = LocalEvent.instant(kind, camera, time, **detail)
        self.save(event)
        return event

    def save(self, event: LocalEvent) -> Added | None:
        """Commit an event (insert or replace by id: a person event is saved at start, on updates
        and at end), then queue it through the shipper; what the outbox did with it."""
        with self._lock, self.db.conn:
            self.db.conn.execute(
                "INSERT OR REPLACE INTO events (id, kind, camera, time, ended, queued, message) "
                "VALUES (?, ?, ?, ?, ?, 0, ?)",
                (event.id, event.kind, event.camera, event.time, event.ended, event.message.model_dump_json()),
            )
        return self._ship(event)

    def _ship(self, event: LocalEvent) -> Added | None:
        if self.shipper is None:
            return None
        added = self.shipper.ship(event)
        if added is not None and added.seq is not None:
            self.mark_queued(event)
        return added

    def mark_queued(self, event: LocalEvent) -> None:
        """The event's message is in the outbox (only this version of it: a later save of the same
        event is queued on its own)."""
        with self._lock, self.db.conn:
            self.db.execute(
                "update events set queued = 1 where id = ? and message = ?", [event.id, event.message.model_dump_json()]
            )

    def _select(self, sql: str, args: list[Any]) -> list[LocalEvent]:
        with self._lock:
            rows = self.db.conn.execute(sql, args).fetchall()
        return [LocalEvent(message=Event.model_validate_json(row[0])) for row in rows]

    def pending(self) -> list[LocalEvent]:
        """Events saved but not yet in the outbox, oldest first."""
        return self._select("select message from events where queued = 0 order by id", [])

    def queue_pending(self) -> int:
        """Queue the events that never reached the outbox (a crash between the two commits, or an
        outbox that had no room for them); how many were handed to the shipper."""
        pending = self.pending() if self.shipper is not None else []
        for event in pending:
            self._ship(event)
        return len(pending)

    def list(self, camera: str | None = None, kind: str | None = None) -> list[LocalEvent]:
        where, args = [], []
        if camera is not None:
            where.append("camera = ?")
            args.append(camera)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        sql = "select message from events" + (" where " + " and ".join(where) if where else "") + " order by id"
        return self._select(sql, args)

    def cameras(self) -> set[str | None]:
        with self._lock:
            return {r["camera"] for r in self.db.query("select distinct camera from events")}

    def prune(
        self, camera: str | None, before: float, keep: Sequence[tuple[float, float]], only_queued: bool = True
    ) -> int:
        """Delete the camera's events that ended before `before`, except those that overlap a `keep`
        window (legal holds) and, with `only_queued`, those not yet queued for the hub (in the
        outbox). None: the agent's own events (no camera).

        An open person event (no end yet) is never pruned; an instant event ends when it happens.
        The holds go in as one JSON parameter and are joined in the statement, so thousands of them
        cost one query (a clause per hold made the statement grow with the holds, past SQLite's
        limit on expression depth)."""
        # One DELETE (the sqlite3 module counts rows and opens the transaction only for a statement
        # that starts with DELETE, so the common table expressions sit inside it).
        sql = f"""
            delete from events where id in (
                with holds(first, last) as materialized (
                    select value ->> 0, value ->> 1 from json_each(:holds)
                )
                select id from events as aged
                where camera is :camera and time < :before and ended < :before{" and queued = 1" if only_queued else ""}
                  and not exists (select 1 from holds where holds.first <= aged.ended and aged.time <= holds.last)
            )
        """
        args = {"camera": camera, "before": before, "holds": json.dumps([[start, end] for start, end in keep])}
        with self._lock, self.db.conn:
            return self.db.execute(sql, args).rowcount

    def close(self) -> None:
        self.db.conn.close()

    def _migrate(self) -> None:
        """An events.db of before (columns detail, sent) becomes today's table in one transaction:
        each row's flat detail turns into its wire message (`legacy_message`), `sent` is renamed
        `queued`. A row no message can be made of (it could never have been shipped either) moves
        to `unreadable_events`, with the reason, rather than stop the agent."""
        conn = self.db.conn
        columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
        if "detail" not in columns:
            return
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            if "detail" not in {row[1] for row in conn.execute("PRAGMA table_info(events)")}:
                return  # another process (test-alarm, the agent) migrated it meanwhile
            conn.execute("ALTER TABLE events ADD COLUMN ended REAL")
            conn.execute("ALTER TABLE events ADD COLUMN message TEXT")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS unreadable_events "
                "(id TEXT, kind TEXT, camera TEXT, time REAL, detail TEXT, sent INTEGER, reason TEXT)"
            )
            rows = conn.execute("SELECT id, kind, camera, time, detail, sent FROM events").fetchall()
            for event_id, kind, camera, time, detail, sent in rows:
                try:
                    event = LocalEvent(message=legacy_message(event_id, kind, camera, time, json.loads(detail or "{}")))
                except (ValidationError, ValueError, TypeError) as exc:
                    log.error("events.db: event %s (%s) cannot be read and was set aside: %s", event_id, kind, exc)
                    conn.execute(
                        "INSERT INTO unreadable_events VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (event_id, kind, camera, time, detail, sent, str(exc)),
                    )
                    conn.execute("DELETE FROM events WHERE id = ?", (event_id,))
                    continue
                conn.execute(
                    "UPDATE events SET message = ?, ended = ? WHERE id = ?",
                    (event.message.model_dump_json(), event.ended, event_id),
                )
            conn.execute("ALTER TABLE events RENAME COLUMN sent TO queued")
            conn.execute("ALTER TABLE events DROP COLUMN detail")
        log.info("events.db: %d events migrated to typed messages", len(rows))
