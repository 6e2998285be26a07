"""The local outbox: messages for the broker, on disk before they are sent, deleted on PUBACK.

One SQLite file (<storage.root>/outbox.db) shared by the running agent and the `test-alarm`
command, so both write with WAL and a busy timeout and every write is one IMMEDIATE
transaction (two processes never compute the size bound from the same stale total).

`seq` (AUTOINCREMENT, never reused) is the send order. Writers are serialised by SQLite's
write lock, so a committed row always has a higher seq than every row committed before it:
a sender that remembers the last seq it handed to the broker never skips a row, even one
inserted by another process.

Enqueue commits with synchronous=FULL (an alert survives a power cut as soon as `enqueue`
returns); acks commit with synchronous=NORMAL, because losing an ack in a power cut only
means a duplicate, which the hub discards (it stores by event id, phase and seq).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

OUTBOX_DB = "outbox.db"
LOCK_FILE = "agent.lock"

# Drop order when the outbox is full: lower goes first. Heartbeats are never queued.
PRIORITY_EVENT = 2  # person, camera offline/back, disk full: what the outbox exists for
PRIORITY_STATUS = 1  # replies, status-like messages
PRIORITY_TEST = 1  # test-alarm events prove a path; they must not push out real alerts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    created REAL NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_drop_order ON outbox (priority, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class OutboxMessage:
    seq: int
    topic: str
    payload: bytes
    qos: int
    priority: int
    created: float
    size: int


@dataclass(frozen=True)
class Added:
    """What `Outbox.add` did: the new row's seq (None: the message itself was dropped) and the
    older rows it evicted to make room, so a caller can tell the person who asked."""

    seq: int | None
    evicted: tuple[int, ...] = ()


def message_size(topic: str, payload: bytes) -> int:
    """What a row counts against the bound: the bytes that go on the wire (SQLite overhead aside)."""
    return len(topic.encode("utf-8")) + len(payload)


class Outbox:
    """Pending messages in send order. Thread-safe; several processes may open the same file."""

    def __init__(self, path: Path, max_bytes: int = 50_000_000, busy_timeout: float = 30.0) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
        self._conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        self._dropping = False  # inside a burst of drops: log once at its start and once at its end
        self._burst_dropped = 0
        with self._lock:
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            # The outbox shares the disk (often an SD card) with the video: keep the log small.
            self._conn.execute("PRAGMA wal_autocheckpoint=64")
            self._conn.execute("PRAGMA journal_size_limit=262144")
            with self._write(durable=True) as cur:
                # Statement by statement: executescript() would COMMIT our IMMEDIATE transaction.
                for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    cur.execute(statement)
                # The byte total is kept in meta (no full scan per enqueue); recount on open so it
                # heals if the file was ever edited by hand.
                total = cur.execute("SELECT COALESCE(SUM(size), 0) FROM outbox").fetchone()[0]
                cur.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('bytes', ?)", (total,))
                cur.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped', 0)")

    @classmethod
    def at(cls, root: Path, max_mb: float = 50.0) -> Outbox:
        """The agent's outbox under its storage root (what the agent and test-alarm both open)."""
        return cls(root / OUTBOX_DB, max_bytes=int(max_mb * 1_000_000))

    @contextmanager
    def _write(self, durable: bool) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")  # take the write lock now: read-then-write stays consistent
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def enqueue(self, topic: str, payload: bytes, qos: int = 1, priority: int = PRIORITY_EVENT) -> int | None:
        """Commit a message; returns its seq, or None when it was itself dropped because the outbox
        is full of messages of higher priority (or it alone is larger than the bound)."""
        return self.add(topic, payload, qos, priority).seq

    def add(self, topic: str, payload: bytes, qos: int = 1, priority: int = PRIORITY_EVENT) -> Added:
        """`enqueue`, also reporting the seqs of the older messages evicted to make room."""
        size = message_size(topic, payload)
        with self._write(durable=True) as cur:
            total = self._meta(cur, "bytes")
            need = total + size - self.max_bytes
            victims: list[tuple[int, int]] = []
            if need > 0:
                victims = self._victims(cur, need, priority)
                if size > self.max_bytes or sum(s for _, s in victims) < need:
                    # Nothing of equal or lower priority can make room: the new message is the one to go.
                    self._count_drop(cur, 1, priority, reason="full of higher-priority messages")
                    return Added(None)
                cur.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq, _ in victims])
                self._count_drop(cur, len(victims), priority, reason="dropping lowest-priority oldest messages")
                total -= sum(s for _, s in victims)
            cur.execute(
                "INSERT INTO outbox (topic, payload, qos, priority, created, size) VALUES (?, ?, ?, ?, ?, ?)",
                (topic, payload, qos, priority, time.time(), size),
            )
            seq = cur.lastrowid
            cur.execute("UPDATE meta SET value = ? WHERE key = 'bytes'", (total + size,))
        if need <= 0 and self._dropping:
            log.warning("outbox has room again; %d messages were dropped while it was full", self._burst_dropped)
            self._dropping, self._burst_dropped = False, 0
        assert seq is not None
        return Added(seq, tuple(victim for victim, _ in victims))

    def _victims(self, cur: sqlite3.Cursor, need: int, priority: int) -> list[tuple[int, int]]:
        """Oldest rows of the lowest priorities (never above the new message's) until `need` bytes."""
        victims: list[tuple[int, int]] = []
        freed = 0
        rows = cur.execute("SELECT seq, size FROM outbox WHERE priority <= ? ORDER BY priority, seq", (priority,))
        for seq, size in rows:  # lazily: stop reading as soon as enough is freed
            if freed >= need:
                break
            victims.append((int(seq), int(size)))
            freed += int(size)
        return victims

    def _count_drop(self, cur: sqlite3.Cursor, count: int, priority: int, reason: str) -> None:
        cur.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (count,))
        if not self._dropping:
            log.warning(
                "outbox %s is full (%.1f MB): %s (priority <= %d); the dropped counter says how many",
                self.path,
                self.max_bytes / 1e6,
                reason,
                priority,
            )
            self._dropping = True
        self._burst_dropped += count

    def pending(self, limit: int = 100, after: int = 0) -> list[OutboxMessage]:
        """Up to `limit` messages with seq > `after`, in seq (send) order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, topic, payload, qos, priority, created, size FROM outbox "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [
            OutboxMessage(int(r[0]), str(r[1]), bytes(r[2]), int(r[3]), int(r[4]), float(r[5]), int(r[6])) for r in rows
        ]

    def ack(self, seq: int) -> bool:
        """Delete a message the broker acknowledged; False when it was already gone."""
        return self.ack_many([seq]) == 1

    def ack_many(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged messages in one transaction (one commit per batch of PUBACKs)."""
        wanted = [(seq,) for seq in seqs]
        if not wanted:
            return 0
        with self._write(durable=False) as cur:
            freed = 0
            deleted = 0
            for params in wanted:
                row = cur.execute("DELETE FROM outbox WHERE seq = ? RETURNING size", params).fetchone()
                if row is not None:
                    freed += int(row[0])
                    deleted += 1
            cur.execute("UPDATE meta SET value = MAX(value - ?, 0) WHERE key = 'bytes'", (freed,))
        return deleted

    def remaining(self, seqs: Iterable[int]) -> set[int]:
        """Which of these seqs are still waiting (not yet acknowledged, not dropped)."""
        wanted = sorted(set(seqs))
        found: set[int] = set()
        with self._lock:
            for start in range(0, len(wanted), 500):  # stay under SQLite's bound-parameter limit
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(f"SELECT seq FROM outbox WHERE seq IN ({marks})", chunk).fetchall()
                found.update(int(r[0]) for r in rows)
        return found

    def _meta(self, cur: sqlite3.Cursor, key: str) -> int:
        row = cur.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row is not None else 0

    @property
    def depth(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._meta(self._conn.cursor(), "bytes")

    @property
    def dropped(self) -> int:
        """Messages dropped because the outbox was full, since it was created (survives restarts)."""
        with self._lock:
            return self._meta(self._conn.cursor(), "dropped")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AgentLockHeld(RuntimeError):
    """Another process (a running agent, or a test-alarm delivering by itself) holds the lock."""


class AgentLock:
    """`<storage.root>/agent.lock`: held (flock, exclusive) by the process that owns the MQTT session.

    The running agent holds it for its lifetime; `test-alarm` tries it without blocking to learn
    whether an agent is running, so there is never a second MQTT session under the same client id.
    flock is released by the kernel when the holder dies, so a kill -9 leaves no stale lock.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        # The pid is only for humans (error messages); the flock is what counts.
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def acquire(self, timeout: float = 0.0) -> None:
        """Take the lock, waiting up to `timeout` s (a test-alarm may hold it for a few seconds)."""
        deadline = time.monotonic() + timeout
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise AgentLockHeld(f"{self.path} is held by process {self.holder() or '?'} (is an agent running?)")
            time.sleep(0.2)

    def holder(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def is_held(root: Path) -> bool:
        """Whether some other open file holds the lock (an agent is running)."""
        probe = AgentLock(root)
        if not probe.path.exists():
            return False
        fd = os.open(probe.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing drops a lock we may have taken
        return False

    def __enter__(self) -> AgentLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
