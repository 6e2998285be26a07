"""WAL checkpoints off ingest's commit path.

SQLite checkpoints inside the commit that takes the write-ahead log past 1,000 pages
(`wal_autocheckpoint`): the committing thread copies the log into the database file and fsyncs
it. For ingest that thread is the writer, so a burst stalled every few commits while messages
waited. Measured with batches of 500 events on this 2-core machine: commit p90 108-116 ms and worst
223-1,282 ms with SQLite's own checkpoints, 49-62 ms and 83-88 ms with this thread (and the burst
written in about half the time). Ingest's connection turns automatic checkpoints off and a
thread of its own runs PASSIVE checkpoints, which never block a writer or a reader.
"""

from __future__ import annotations

import logging
import sqlite3

from hub.db import HubDB
from hub.services.worker import PollingWorker

log = logging.getLogger("diaolou.hub.checkpoint")

POLL_SECONDS = 0.1  # a PASSIVE checkpoint with nothing to copy costs a few microseconds
WAL_WARN_PAGES = 100_000  # ~400 MB of log not copied back: a reader that never lets go


def _checkpoint(conn: sqlite3.Connection) -> bool:
    _busy, logged, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if logged - copied > WAL_WARN_PAGES:
        log.warning("%d pages of the write-ahead log cannot be copied back yet: is a reader stuck?", logged - copied)
    return False  # poll again after POLL_SECONDS


def checkpoints_for(db: HubDB) -> PollingWorker:
    """Turn off the writer's automatic checkpoints; the returned worker (to start and stop beside
    ingest) runs them instead."""
    db.conn.execute("PRAGMA wal_autocheckpoint = 0")
    return PollingWorker("checkpoints", db.path, _checkpoint, POLL_SECONDS)
