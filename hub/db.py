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

import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from contract import Event, Heartbeat, Reply, Status
from hub.records import Record

DB_FILE = "hub.db"
BUSY_TIMEOUT_MS = 5000


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


_UPSERT_SNAPSHOT = (
    "INSERT OR REPLACE INTO snapshots (site, device, event_id, path, bytes, received) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_EVENT = (
    'INSERT OR IGNORE INTO events (id, phase, seq, site, device, camera, kind, time, "end", test, detail, snapshot, '
    "received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_REPLY = (
    "INSERT OR IGNORE INTO replies (site, device, id, ok, time, result, error, received) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# One statement per device and batch. NULL means "this batch says nothing about it": keep the stored value.
# SQLite's two-argument max() is NULL if either side is, hence the coalesce around it.
_UPSERT_DEVICE = """
INSERT INTO devices (site, device, state, clean, status_time, status_received, agent_version, cameras,
                     last_heartbeat, heartbeat_time, first_seen, last_seen)
VALUES (:site, :device, :state, :clean, :status_time, :status_received, :agent_version, :cameras,
        :last_heartbeat, :heartbeat_time, :first_seen, :last_seen)
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
class _DeviceUpdate:
    site: str
    device: str
    first_seen: float
    last_seen: float | None = None
    status: Record | None = None
    heartbeat: Record | None = None

    def params(self) -> dict[str, Any]:
        status = self.status.message if self.status is not None else None
        beat = self.heartbeat.message if self.heartbeat is not None else None
        assert status is None or isinstance(status, Status)
        assert beat is None or isinstance(beat, Heartbeat)
        return {
            "site": self.site,
            "device": self.device,
            "state": status.state if status else None,
            "clean": int(status.clean) if status else None,
            "status_time": status.time if status else None,
            "status_received": self.status.received if self.status else None,
            # A last will written at connect time may carry less than the online status did: an
            # empty camera list or no version means "not said", not "none".
            "agent_version": status.agent_version if status else None,
            "cameras": _json(list(status.cameras)) if status and status.cameras else None,
            "last_heartbeat": beat.model_dump_json() if beat else None,
            "heartbeat_time": beat.time if beat else None,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


class HubDB:
    """One connection. Ingest's writer thread is its only user while ingest runs; readers (the CLI,
    the web UI) open their own HubDB: WAL lets them read while ingest writes."""

    def __init__(self, path: str | Path, synchronous: str = "FULL", create: bool = True) -> None:
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
        self._create()

    def _create(self) -> None:
        db = self.db
        db.table("events").create(
            {
                "id": str,
                "phase": str,
                "seq": int,
                "site": str,
                "device": str,
                "camera": str,
                "kind": str,
                "time": float,
                "end": float,
                "test": int,
                "detail": str,
                "snapshot": str,
                "received": float,
            },
            pk=("id", "phase", "seq"),
            not_null=("site", "device", "kind", "time", "test", "received"),
            if_not_exists=True,
        )
        # Rowid order is arrival order (the table keeps its rowid): per device it is the agent's send order.
        db.table("events").create_index(["site", "device", "time"], if_not_exists=True)
        db.table("events").create_index(["time"], if_not_exists=True)
        db.table("devices").create(
            {
                "site": str,
                "device": str,
                "state": str,
                "clean": int,
                "status_time": float,
                "status_received": float,
                "agent_version": str,
                "cameras": str,
                "last_heartbeat": str,
                "heartbeat_time": float,
                "first_seen": float,
                "last_seen": float,
            },
            pk=("site", "device"),
            if_not_exists=True,
        )
        db.table("replies").create(
            {
                "site": str,
                "device": str,
                "id": str,
                "ok": int,
                "time": float,
                "result": str,
                "error": str,
                "received": float,
            },
            pk=("site", "device", "id"),
            if_not_exists=True,
        )
        # Event snapshots: the JPEG is a file under snapshots/<site>/<device>/<event id>.jpg beside
        # hub.db; the end-of-event snapshot (the best one) replaces the first.
        db.table("snapshots").create(
            {"site": str, "device": str, "event_id": str, "path": str, "bytes": int, "received": float},
            pk=("site", "device", "event_id"),
            if_not_exists=True,
        )
        db.table("rejections").create(
            {
                "site": str,
                "device": str,
                "cause": str,
                "count": int,
                "first_seen": float,
                "last_seen": float,
                "last_error": str,
                "last_topic": str,
            },
            pk=("site", "device", "cause"),
            if_not_exists=True,
        )

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

    def write(self, records: Sequence[Record]) -> list[Record]:
        """Store a batch in one transaction. Returns the records that changed something, in order:
        events and replies that were new (not redelivered duplicates), every status, heartbeat and
        rejection. On error nothing of the batch is stored and the exception propagates."""
        changed: list[Record] = []
        devices: dict[tuple[str, str], _DeviceUpdate] = {}
        rejections: dict[tuple[str, str, str], list[Record]] = {}
        with self.conn:  # one transaction: commit on success, rollback on error
            cur = self.conn.cursor()
            for record in records:
                if record.kind == "rejection":
                    assert record.cause is not None
                    rejections.setdefault((record.site, record.device, record.cause), []).append(record)
                    changed.append(record)
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
                    changed.append(record)
                    continue
                message = record.message
                if isinstance(message, Event):
                    cur.execute(_INSERT_EVENT, _event_row(record, message))
                    if cur.rowcount == 1:
                        changed.append(record)
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
                        changed.append(record)
                elif isinstance(message, Status):
                    update.status = record  # in arrival order: the last status of the batch wins
                    changed.append(record)
                elif isinstance(message, Heartbeat):
                    update.heartbeat = record
                    changed.append(record)
            cur.executemany(_UPSERT_DEVICE, [u.params() for u in devices.values()])
            cur.executemany(
                _UPSERT_REJECTION,
                [
                    (site, device, cause, len(rs), rs[0].received, rs[-1].received, rs[-1].error, rs[-1].topic)
                    for (site, device, cause), rs in rejections.items()
                ],
            )
        return changed

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
