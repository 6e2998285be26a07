"""Ingest's commits never checkpoint the write-ahead log themselves; the checkpoint thread copies
it back (hub/checkpoint.py). Observed from the files: the database file grows only when pages are
copied back into it."""

from __future__ import annotations

from pathlib import Path

from hub.checkpoint import checkpoints_for
from hub.db import HubDB
from hub.records import Record
from tests.conftest import wait_for
from tests.test_hub import event

PAGE = 4096


def test_commits_leave_checkpoints_to_the_worker_which_copies_the_log_back(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    db = HubDB(path)
    worker = checkpoints_for(db)
    try:
        before = path.stat().st_size
        for _ in range(20):
            db.write([Record("event", "s1", f"d{n % 50}", 100.0 + n, message=event()) for n in range(1000)])
        wal = Path(f"{path}-wal").stat().st_size
        # Past SQLite's automatic checkpoint (1,000 pages), and yet nothing was copied back.
        assert wal > 1000 * PAGE
        assert path.stat().st_size == before
        worker.start()
        assert wait_for(lambda: path.stat().st_size > before + 1000 * PAGE, 30)
        assert len(db.events(limit=30_000)) == 20_000
    finally:
        worker.stop()
        db.close()
