"""The hub's SQLite database (sqlite-utils, WAL): events, devices, replies, rejections.

Ingest writes through `HubDB.write(records)`: one transaction per batch, so a burst of thousands
of events costs one commit (and one flush with synchronous=FULL), not thousands. Inserts are
idempotent: an event is keyed by (id, phase, seq) and a reply by (site, device, id), so a message
the broker delivers twice (after a hub crash before its acknowledgement) is stored once.

Heartbeats are not kept as a history: only the latest one per device, in `devices`. A thousand
agents beating every 10 s would otherwise write 8.6 million rows a day for little use; the web UI
needs the current health, and trends belong in a metrics system.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils
from pydantic_core import to_json

from contract import Event, Heartbeat, Reply, Status
from hub.migrations import migrate
from hub.records import Record

DB_FILE = "hub.db"
BUSY_TIMEOUT_MS = 5000
DEFAULT_MAX_DEAD_LETTERS = 10_000
_MAX_TEXT = 2000  # a dead letter's message and error are kept truncated: they come from untrusted senders

log = logging.getLogger("diaolou.hub.db")


def _json(value: Any) -> str | None:
    # pydantic_core's encoder: compact JSON like json.dumps(separators=(",", ":"), ensure_ascii=False),
    # five times faster. Only what passed the contract comes here (finite numbers, valid Unicode).
    return None if value is None else to_json(value).decode("utf-8")


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


_UPSERT_SNAPSHOT = (
    "INSERT OR REPLACE INTO snapshots (site, device, event_id, path, bytes, received) VALUES (?, ?, ?, ?, ?, ?)"
)
# ON CONFLICT (key) DO NOTHING, not INSERT OR IGNORE: a redelivery is ignored, but any other
# constraint (a NULL where the column forbids it) raises instead of silently losing the row.
_INSERT_EVENTS = (
    'INSERT INTO events (id, phase, seq, site, device, camera, kind, time, "end", test, detail, snapshot, '
    "received) VALUES {rows} ON CONFLICT (id, phase, seq) DO NOTHING"
)
_INSERT_REPLY = (
    "INSERT INTO replies (site, device, id, ok, time, result, error, received) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (site, device, id) DO NOTHING"
)
_HAS_EVENT = "SELECT 1 FROM events WHERE id = ? AND site = ? AND device = ? LIMIT 1"
_INSERT_DEAD_LETTER = (
    "INSERT INTO dead_letters (site, device, kind, error, message, received, set_aside) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# One row per device and batch. NULL means "this batch says nothing about it": keep the stored value.
# SQLite's two-argument max() is NULL if either side is, hence the coalesce around it.
_UPSERT_DEVICES = """
INSERT INTO devices (site, device, state, clean, status_time, status_received, agent_version, cameras,
                     last_heartbeat, heartbeat_time, first_seen, last_seen)
VALUES {rows}
ON CONFLICT (site, device) DO UPDATE SET
    state = coalesce(excluded.state, devices.state),
    clean = CASE WHEN excluded.state IS NULL THEN devices.clean ELSE excluded.clean END,
    status_time = coalesce(excluded.status_time, devices.status_time),
    status_received = coalesce(excluded.status_received, devices.status_received),
    agent_version = coalesce(excluded.agent_version, devices.agent_version),
    cameras = coalesce(excluded.cameras, devices.cameras),
    last_heartbeat = coalesce(excluded.last_heartbeat, devices.last_heartbeat),
    heartbeat_time = coalesce(excluded.heartbeat_time, devices.heartbeat_time),
    last_seen = coalesce(max(devices.last_seen, excluded.last_seen), devices.last_seen, excluded.last_seen)
"""
_UPSERT_REJECTION = """
INSERT INTO rejections (site, device, cause, count, first_seen, last_seen, last_error, last_topic)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site, device, cause) DO UPDATE SET
    count = rejections.count + excluded.count,
    last_seen = excluded.last_seen,
    last_error = excluded.last_error,
    last_topic = excluded.last_topic
"""


@dataclass
class WriteResult:
    """What one `HubDB.write` did."""

    changed: list[Record] = field(default_factory=list)  # changed the database, in order: fan these out
    rejected: list[Record] = field(default_factory=list)  # turned into rejections by the store (orphan snapshots)
    set_aside: list[Record] = field(default_factory=list)  # refused by the database: now in dead_letters


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_MAX_TEXT]


def _safe_text(value: object) -> object:
    """A str SQLite can store: characters UTF-8 cannot encode become backslash escapes."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


@dataclass
class _DeviceUpdate:
    site: str
    device: str
    first_seen: float
    last_seen: float | None = None
    status: Record | None = None
    heartbeat: Record | None = None

    def params(self) -> tuple[Any, ...]:
        """The row for _UPSERT_DEVICES, in its column order."""
        status = self.status.message if self.status is not None else None
        beat = self.heartbeat.message if self.heartbeat is not None else None
        assert status is None or isinstance(status, Status)
        assert beat is None or isinstance(beat, Heartbeat)
        return (
            self.site,
            self.device,
            status.state if status else None,
            int(status.clean) if status else None,
            status.time if status else None,
            self.status.received if self.status else None,
            # A last will written at connect time may carry less than the online status did: an
            # empty camera list or no version means "not said", not "none".
            status.agent_version if status else None,
            _json(list(status.cameras)) if status and status.cameras else None,
            beat.model_dump_json() if beat else None,
            beat.time if beat else None,
            self.first_seen,
            self.last_seen,
        )


# A batch's events and devices go to SQLite in a few multi-row statements, not one statement per
# row: sqlite3 lets go of the GIL for every statement, and a thread that lets go of it while
# paho's network thread is busy waits up to the interpreter's switch interval (5 ms) to get it
# back. 1,000 single-row inserts took 2 ms alone and 0.9 s next to a busy thread.
_CHUNKS = (256, 64, 16, 4, 1)
_EVENT_COLUMNS = 13
_DEVICE_COLUMNS = 12


def _chunk_sizes(count: int) -> list[int]:
    """`count` rows as statements of the sizes in _CHUNKS (few distinct statements to prepare)."""
    sizes = []
    for size in _CHUNKS:
        while count >= size:
            sizes.append(size)
            count -= size
    return sizes


@functools.cache
def _multi_row(template: str, columns: int, rows: int) -> str:
    row = "(" + ", ".join("?" * columns) + ")"
    return template.replace("{rows}", ", ".join([row] * rows))


class HubDB:
    """One connection. Ingest's writer thread is its only user while ingest runs; readers (the CLI,
    the web UI) open their own HubDB: WAL lets them read while ingest writes."""

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "FULL",
        create: bool = True,
        max_dead_letters: int = DEFAULT_MAX_DEAD_LETTERS,
    ) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise FileNotFoundError(f"no hub database at {self.path} (has `diaolou-hub run` been started?)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: created by the thread that starts ingest, used by its writer thread.
        self.conn = sqlite3.connect(self.path, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        self.db = sqlite_utils.Database(self.conn)
        self.db.enable_wal()
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        try:
            self.applied = migrate(self.conn, str(self.path))
        except BaseException:
            self.conn.close()
            raise
        self.max_dead_letters = max_dead_letters

    def close(self) -> None:
        self.conn.close()

    # --- writing ------------------------------------------------------------------------------
    @property
    def snapshot_dir(self) -> Path:
        return self.path.parent / "snapshots"

    def _store_snapshot(self, record: Record) -> tuple[object, ...]:
        """Write the JPEG durably (temp file, fsync, rename) and return its row's parameters. Site,
        device (from the topic) and event id (checked against the ULID pattern) make a safe path."""
        assert record.data is not None and record.name is not None
        rel = Path("snapshots") / record.site / record.device / f"{record.name}.jpg"
        path = self.path.parent / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(record.data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return (record.site, record.device, record.name, rel.as_posix(), len(record.data), record.received)

    def write(self, records: Sequence[Record]) -> WriteResult:
        """Store a batch in one transaction and say what changed, in order: events and replies
        that were new (not redelivered duplicates), every status, heartbeat and rejection.

        A record the database refuses (the contract should stop all of them; this is the net
        under it) must not hold up the others: the batch is then written again one record at a
        time, and each refused record is set aside in `dead_letters` with the reason, counted as
        an `unstorable` rejection of its device, and reported in `set_aside`. Errors of the
        database itself (disk full, locked, I/O: sqlite3.OperationalError) are nobody's record:
        nothing of the batch is stored and the exception propagates, so the caller retries it."""
        try:
            with self.conn:  # one transaction: commit on success, rollback on error
                # Begun here, not left to sqlite3 (which begins one before the first INSERT): a
                # SAVEPOINT outside a transaction begins one of its own, which its RELEASE commits.
                if not self.conn.in_transaction:
                    self.conn.execute("BEGIN IMMEDIATE")
                result = WriteResult()
                self._apply(self.conn.cursor(), records, result)
                return result
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            log.warning("a batch of %d records failed (%s); writing them one by one", len(records), _describe(exc))
        return self._write_one_by_one(records)

    def _write_one_by_one(self, records: Sequence[Record]) -> WriteResult:
        result = WriteResult()
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for record in records:
                cur.execute("SAVEPOINT one_record")
                try:
                    mark = len(result.changed), len(result.rejected)
                    self._apply(cur, [record], result)
                except sqlite3.OperationalError:
                    raise
                except Exception as exc:
                    cur.execute("ROLLBACK TO one_record")
                    del result.changed[mark[0] :], result.rejected[mark[1] :]
                    self._set_aside(cur, record, _describe(exc))
                    result.set_aside.append(record)
                cur.execute("RELEASE one_record")
            if result.set_aside:
                # Bounded like the rejection counters: a flood of bad records keeps the newest.
                cur.execute(
                    "DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?",
                    (self.max_dead_letters,),
                )
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise
        return result

    def _set_aside(self, cur: sqlite3.Cursor, record: Record, error: str) -> None:
        # repr() escapes what SQLite cannot take (a lone surrogate becomes the text \ud800).
        shown = repr(record.message if record.message is not None else record)
        row = (record.site, record.device, record.kind, error, shown[:_MAX_TEXT], record.received, time.time())
        cur.execute(_INSERT_DEAD_LETTER, tuple(_safe_text(v) for v in row))
        cur.execute(
            _UPSERT_REJECTION,
            tuple(
                _safe_text(v)
                for v in (record.site, record.device, "unstorable", 1, record.received, record.received, error, "")
            ),
        )

    def _apply(self, cur: sqlite3.Cursor, records: Sequence[Record], result: WriteResult) -> None:
        devices: dict[tuple[str, str], _DeviceUpdate] = {}
        rejections: dict[tuple[str, str, str], list[Record]] = {}
        # Events wait here (their place in `changed` and their row) for one multi-row insert.
        events: list[tuple[int, tuple[Any, ...]]] = []
        duplicates: set[int] = set()  # places in `changed` of events that were there already
        for record in records:
            if record.kind == "snapshot" and events:
                self._insert_events(cur, events, duplicates)  # its event may be one of them
            if (
                record.kind == "snapshot"
                and not cur.execute(_HAS_EVENT, (record.name, record.site, record.device)).fetchone()
            ):
                # Only a device's own events get snapshots: a JPEG for an id the hub never
                # received from it would be a file nobody can reach or age out.
                error = f"snapshot for event {record.name}, which the hub has not received from this device"
                record = Record(
                    "rejection", record.site, record.device, record.received, cause="orphan", error=error, topic=""
                )
                result.rejected.append(record)
            if record.kind == "rejection":
                assert record.cause is not None
                rejections.setdefault((record.site, record.device, record.cause), []).append(record)
                result.changed.append(record)
                continue
            update = devices.get((record.site, record.device))
            if update is None:
                update = devices[(record.site, record.device)] = _DeviceUpdate(
                    record.site, record.device, record.received
                )
            if not record.retained and not _is_last_will(record):
                # last_seen = when the hub last heard the device itself: a retained copy and a last
                # will (published by the broker for a vanished device) are not signs of life.
                update.last_seen = max(update.last_seen or 0.0, record.received)
            if record.kind == "snapshot":
                cur.execute(_UPSERT_SNAPSHOT, self._store_snapshot(record))
                result.changed.append(record)
                continue
            message = record.message
            if isinstance(message, Event):
                events.append((len(result.changed), _event_row(record, message)))
                result.changed.append(record)
            elif isinstance(message, Reply):
                cur.execute(
                    _INSERT_REPLY,
                    (
                        record.site,
                        record.device,
                        message.id,
                        int(message.ok),
                        message.time,
                        _json(message.result),
                        message.error,
                        record.received,
                    ),
                )
                if cur.rowcount == 1:
                    result.changed.append(record)
            elif isinstance(message, Status):
                update.status = record  # in arrival order: the last status of the batch wins
                result.changed.append(record)
            elif isinstance(message, Heartbeat):
                update.heartbeat = record
                result.changed.append(record)
        if events:
            self._insert_events(cur, events, duplicates)
        if duplicates:
            first = min(duplicates)
            result.changed[first:] = [r for i, r in enumerate(result.changed[first:], first) if i not in duplicates]
        rows = [u.params() for u in devices.values()]
        done = 0
        for size in _chunk_sizes(len(rows)):
            params = [value for row in rows[done : done + size] for value in row]
            cur.execute(_multi_row(_UPSERT_DEVICES, _DEVICE_COLUMNS, size), params)
            done += size
        cur.executemany(
            _UPSERT_REJECTION,
            [
                (site, device, cause, len(rs), rs[0].received, rs[-1].received, rs[-1].error, rs[-1].topic)
                for (site, device, cause), rs in rejections.items()
            ],
        )

    def _insert_events(
        self, cur: sqlite3.Cursor, events: list[tuple[int, tuple[Any, ...]]], duplicates: set[int]
    ) -> None:
        """Insert the waiting events (and empty `events`); note in `duplicates` the places of those
        the table already held (a redelivery, or the same message twice in the batch)."""
        done = 0
        for size in _chunk_sizes(len(events)):
            chunk = events[done : done + size]
            done += size
            if size > 1:
                cur.execute("SAVEPOINT events_chunk")
                cur.execute(
                    _multi_row(_INSERT_EVENTS, _EVENT_COLUMNS, size), [value for _, row in chunk for value in row]
                )
                if cur.rowcount == size:  # all new: the usual case
                    cur.execute("RELEASE events_chunk")
                    continue
                # A duplicate among them: find which, one row at a time.
                cur.execute("ROLLBACK TO events_chunk")
                cur.execute("RELEASE events_chunk")
            for place, row in chunk:
                cur.execute(_multi_row(_INSERT_EVENTS, _EVENT_COLUMNS, 1), row)
                if cur.rowcount != 1:
                    duplicates.add(place)
        events.clear()

    # --- reading ------------------------------------------------------------------------------
    def events(
        self,
        site: str | None = None,
        device: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored events in arrival order (per device, the order the agent sent them)."""
        where, params = _filters(site=site, device=device)
        if since is not None:
            where.append("time >= ?")
            params.append(since)
        sql = 'SELECT rowid, id, phase, seq, site, device, camera, kind, time, "end", test, detail, snapshot, received '
        sql += "FROM events" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._rows(sql, params)
        for row in rows:
            row["test"] = bool(row["test"])
            row["detail"] = _loads(row["detail"])
            row["snapshot"] = _loads(row["snapshot"])
        return rows

    def devices(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM devices ORDER BY site, device", [])
        for row in rows:
            row["clean"] = None if row["clean"] is None else bool(row["clean"])
            row["cameras"] = _loads(row["cameras"]) or []
            row["last_heartbeat"] = _loads(row["last_heartbeat"])
        return rows

    def device(self, site: str, device: str) -> dict[str, Any] | None:
        return next((d for d in self.devices() if d["site"] == site and d["device"] == device), None)

    def replies(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM replies ORDER BY received", [])
        for row in rows:
            row["ok"] = bool(row["ok"])
            row["result"] = _loads(row["result"])
        return rows

    def rejections(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM rejections ORDER BY site, device, cause", [])

    def dead_letters(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Messages set aside because the database refused them, newest first."""
        sql = "SELECT * FROM dead_letters ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit is not None else "")
        return self._rows(sql, [])

    def rejection_keys(self) -> set[tuple[str, str, str]]:
        return {(r["site"], r["device"], r["cause"]) for r in self.rejections()}

    def _rows(self, sql: str, params: Iterable[Any]) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _filters(**values: str | None) -> tuple[list[str], list[Any]]:
    where, params = [], []
    for column, value in values.items():
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    return where, params


def _event_row(record: Record, event: Event) -> tuple[Any, ...]:
    snapshot = event.snapshot.model_dump() if event.snapshot is not None else None
    return (
        event.id,
        event.phase,
        event.seq,
        record.site,
        record.device,
        event.camera,
        event.kind,
        event.time,
        event.end,
        int(event.test),
        _json(event.detail),
        _json(snapshot),
        record.received,
    )


def _is_last_will(record: Record) -> bool:
    return isinstance(record.message, Status) and not record.message.clean
