"""A background thread with its own hub.db connection that calls a step until stopped: triage
and the webhook deliverer run beside ingest this way."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hub.store import connect

log = logging.getLogger("diaolou.hub.worker")


class GiveWay:
    """Tells a background reader of new events (triage, the notifier) to step aside while `busy()`
    says ingest is in a burst, for at most `most` seconds in a row, so that it never starves.

    They share the interpreter's lock with ingest's writer: catching up on thousands of new events
    in Python while a burst arrives made the writer's commits up to three times slower (commit
    pauses p99 of 150-300 ms against 90-120 ms with them stopped, 20,000 events from 200 boxes).
    They catch up once the burst is stored."""

    def __init__(self, busy: Callable[[], bool], most: float = 2.0) -> None:
        self.busy = busy
        self.most = most
        self._since: float | None = None

    def now(self) -> bool:
        if not self.busy():
            self._since = None
            return False
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if now - self._since >= self.most:
            self._since = None  # one step now, then it may step aside again
            return False
        return True


GIVE_WAY_WAIT_SECONDS = 0.05  # how often a reader that stepped aside looks again


class PollingWorker:
    """`step(conn)` returns True when there may be more to do at once; otherwise the thread waits
    `poll` seconds (or until stopped, or until `wake` is set: a route that just queued work for it
    sets it). A step that raises is logged and tried again: a thread that died would stop its work
    without a word."""

    def __init__(
        self,
        name: str,
        db_path: Path,
        step: Callable[[sqlite3.Connection], bool],
        poll: float,
        join: float = 10,
        wake: threading.Event | None = None,
        give_way: GiveWay | None = None,
    ) -> None:
        self.name = name
        self.db_path = db_path
        self.step = step
        self.poll = poll
        self.join = join
        self._stop = threading.Event()
        self._wake = wake
        self.give_way = give_way
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"diaolou-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._wake is not None:
            self._wake.set()
        if self._thread is not None:
            self._thread.join(self.join)
            self._thread = None

    def _run(self) -> None:
        conn = connect(self.db_path)
        try:
            while not self._stop.is_set():
                if self.give_way is not None and self.give_way.now():
                    self._stop.wait(GIVE_WAY_WAIT_SECONDS)
                    continue
                if self._wake is not None:
                    self._wake.clear()  # before the step: a wake during it makes the next wait return at once
                try:
                    more = self.step(conn)
                except sqlite3.OperationalError as exc:  # busy or locked for a moment: the next round
                    log.warning("%s: %s; trying again", self.name, exc)
                    more = False
                except Exception:
                    log.exception("%s failed; trying again", self.name)
                    more = False
                if not more:
                    (self._wake or self._stop).wait(self.poll)
        finally:
            conn.close()
