"""What keeps ingest's commits short under a burst: its commits never checkpoint the write-ahead
log themselves, the checkpoint thread copies it back (hub/checkpoint.py; observed from the files:
the database file grows only when pages are copied back into it), and the hub's other readers of
new events give way while ingest is busy (hub/services/worker.py, GiveWay)."""

from __future__ import annotations

import threading
from pathlib import Path
from unittest.mock import patch

from hub.checkpoint import checkpoints_for
from hub.db import HubDB
from hub.records import Record
from hub.services.worker import GiveWay, PollingWorker
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


def test_a_background_reader_gives_way_to_a_burst_but_never_starves() -> None:
    """Triage and the notifier step aside while ingest is busy, for at most `most` seconds in a
    row: then one step runs, and they may step aside again."""
    busy = [True]
    clock = [100.0]
    way = GiveWay(lambda: busy[0], most=2.0)
    with patch("hub.services.worker.time.monotonic", lambda: clock[0]):
        assert way.now()  # the burst starts: step aside
        clock[0] += 1.9
        assert way.now()
        clock[0] += 0.2  # 2.1 s aside: one step now
        assert not way.now()
        assert way.now()  # and aside again
        busy[0] = False
        assert not way.now()  # the burst is stored: at once


def test_a_polling_worker_that_gives_way_still_runs_its_steps(tmp_path: Path) -> None:
    HubDB(tmp_path / "hub.db").close()
    steps = threading.Event()
    worker = PollingWorker(
        "test", tmp_path / "hub.db", lambda conn: steps.set() or False, 0.05, give_way=GiveWay(lambda: True, most=0.3)
    )
    worker.start()
    try:
        assert steps.wait(5)  # busy all along, and the step still ran (after 0.3 s aside)
    finally:
        worker.stop()
