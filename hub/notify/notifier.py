"""The notifier: person alerts to the phones of the people who want them, with nothing lost.

Two threads, each with its own connection to hub.db:

- The matcher reads the first message of each person event (phase new, not a test) after a
  cursor kept in hub.db, in arrival order. For every enabled channel whose owner may see the
  camera (`Principal.may_see_camera`, the same rule as the web UI) and whose arming schedule
  for that camera says armed at the event's time, it queues one delivery in `notify_outbox`.
  The deliveries and the new cursor are one transaction: a hub that stops at any point neither
  skips an alert nor queues one twice, and (channel, event id) is unique besides.
- The sender posts each channel's oldest pending delivery, one channel after another. A robot
  that is down, answers an error or refuses the message (errcode != 0) holds its channel back,
  1 s, 2 s, 4 s ... up to `backoff_max_seconds`, and the delivery stays queued; the other
  channels go on. A delivery is marked sent right after the robot took it; only a hub crash
  between the two sends it again.

An alert still undelivered after `give_up_seconds` is marked expired (a night's alert told
two days later helps no one), and an event older than that when the hub first sees it (a box
that was offline for days) is not queued.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hub.models import Principal, User, camera_id
from hub.notify import channels, robots
from hub.notify.message import message
from hub.notify.settings import NotifyPolicy as NotifyPolicy  # re-exported: the notifier and its settings
from hub.notify.settings import NotifySettings as NotifySettings
from hub.services import accounts
from hub.services.worker import GIVE_WAY_WAIT_SECONDS, GiveWay
from hub.store import connect, open_store, transaction

log = logging.getLogger("diaolou.hub.notify")

_NEW_ALERTS = (
    "SELECT rowid, id, site, device, camera, kind, time, detail FROM events WHERE rowid > ? AND phase = 'new' "
    "AND test = 0 AND kind = 'person' AND camera IS NOT NULL ORDER BY rowid LIMIT ?"
)
# Each channel's oldest pending delivery, for the channels whose backoff has passed (or lies
# further ahead than any backoff: the clock was set back).
_DUE = (
    "SELECT o.id, o.channel_id, o.text, c.kind, c.url, c.secret, c.failures FROM notify_channels c "
    "JOIN notify_outbox o ON o.id = (SELECT min(id) FROM notify_outbox WHERE channel_id = c.id AND state = 'pending') "
    "WHERE c.enabled = 1 AND (c.retry_at <= ? OR c.retry_at > ?) ORDER BY o.id"
)
KEEP_DONE_SECONDS = 30 * 86400.0  # sent and expired deliveries are kept this long, for the record


def _principal(user: User) -> Principal:
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        locale=user.locale,
        cameras=frozenset(user.cameras),
        sites=frozenset(user.sites),
        buildings=frozenset(user.buildings),
        grids=frozenset(user.grids),
    )


class Notifier:
    def __init__(
        self,
        db_path: Path,
        settings: NotifySettings,
        policy: NotifyPolicy | None = None,
        clock: Callable[[], float] = time.time,
        give_way: GiveWay | None = None,
    ) -> None:
        self.db_path = db_path
        self.give_way = give_way  # the matcher steps aside while ingest works through a burst
        self.settings = settings
        self.policy = policy or NotifyPolicy()
        self.clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()  # the matcher queued something: the sender looks at once
        self._threads: list[threading.Thread] = []
        self._next_prune = 0.0

    # --- life cycle --------------------------------------------------------------------------------
    def start(self) -> None:
        open_store(self.db_path)  # a no-op when the hub opened it already
        if self.settings.public_url is None:
            log.warning("web.public_url is not set: alert messages to phones will carry no link")
        self._stop.clear()
        for name, loop in (("match", self._match_loop), ("send", self._send_loop)):
            thread = threading.Thread(target=loop, name=f"diaolou-notify-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Returns once both threads are out; a post under way finishes (at most its timeout)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(self.policy.timeout_seconds + 5)
        self._threads = []

    def _run(self, name: str, step: Callable[[sqlite3.Connection], float], pause: threading.Event) -> None:
        """Call `step` until stopped; between calls wait what it asked for, or until `pause` is set."""
        conn = connect(self.db_path)
        try:
            while not self._stop.is_set():
                try:
                    wait = step(conn)
                except Exception:  # a thread that dies would stop every notification without a word
                    log.exception("notifier %s failed; trying again", name)
                    wait = self.policy.poll_seconds
                if wait > 0:
                    pause.wait(wait)
                    if pause is self._wake:
                        self._wake.clear()
        finally:
            conn.close()

    def _match_loop(self) -> None:
        self._run("match", self._match_step, self._stop)

    def _send_loop(self) -> None:
        self._run("send", self._send_step, self._wake)

    # --- matching ----------------------------------------------------------------------------------
    def _match_step(self, conn: sqlite3.Connection) -> float:
        """Queue the deliveries of one batch of new alerts; 0 when there may be more at once."""
        if self.give_way is not None and self.give_way.now():
            return GIVE_WAY_WAIT_SECONDS
        # Look first without the write lock: most polls find nothing, and ingest needs that lock.
        position = conn.execute("SELECT position FROM notify_cursor WHERE name = 'events'").fetchone()[0]
        if conn.execute(_NEW_ALERTS, (position, 1)).fetchone() is None:
            return self.policy.poll_seconds
        now = self.clock()
        queued = 0
        with transaction(conn):
            position = conn.execute("SELECT position FROM notify_cursor WHERE name = 'events'").fetchone()[0]
            rows = conn.execute(_NEW_ALERTS, (position, self.policy.batch)).fetchall()
            targets = self._targets(conn)
            for row in rows:
                queued += self._queue(conn, row, targets, now)
            if rows:
                conn.execute("UPDATE notify_cursor SET position = ? WHERE name = 'events'", (rows[-1]["rowid"],))
        if queued:
            self._wake.set()
        return 0.0 if len(rows) == self.policy.batch else self.policy.poll_seconds

    def _targets(self, conn: sqlite3.Connection) -> list[tuple[int, Principal]]:
        """(channel id, its owner) of every enabled channel."""
        users = {user.id: _principal(user) for user in accounts.list_users(conn)}
        return [
            (row["id"], users[row["user_id"]])
            for row in conn.execute("SELECT id, user_id FROM notify_channels WHERE enabled = 1 ORDER BY id")
            if row["user_id"] in users
        ]

    def _queue(
        self, conn: sqlite3.Connection, row: sqlite3.Row, targets: list[tuple[int, Principal]], now: float
    ) -> int:
        if now - row["time"] > self.policy.give_up_seconds:
            log.info("alert %s is %.0f s old on arrival: not sent to phones", row["id"], now - row["time"])
            return 0
        detail = json.loads(row["detail"]) if row["detail"] else {}
        zone = detail.get("zone") if isinstance(detail.get("zone"), str) else None
        cid = camera_id(row["site"], row["device"], row["camera"])
        queued = 0
        for channel_id, owner in targets:
            if not owner.may_see_camera(row["site"], row["device"], row["camera"]):
                continue
            arming = channels.get_arming(conn, owner.user_id, cid, self.settings.time_zone, row["time"])
            if not arming.armed_now:
                continue
            text = message(owner.locale, cid, row["time"], arming.time_zone, zone, self.settings.alert_link(row["id"]))
            cur = conn.execute(
                "INSERT INTO notify_outbox (channel_id, event_id, text, created) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (channel_id, event_id) DO NOTHING",
                (channel_id, row["id"], text, now),
            )
            queued += cur.rowcount
        return queued

    # --- sending -----------------------------------------------------------------------------------
    def _send_step(self, conn: sqlite3.Connection) -> float:
        now = self.clock()
        self._tidy(conn, now)
        for due in conn.execute(_DUE, (now, now + self.policy.backoff_max_seconds)).fetchall():
            if self._stop.is_set():
                return 0.0
            self._deliver(conn, due)
        later = conn.execute(
            "SELECT min(c.retry_at) FROM notify_channels c WHERE c.enabled = 1 AND EXISTS "
            "(SELECT 1 FROM notify_outbox o WHERE o.channel_id = c.id AND o.state = 'pending')"
        ).fetchone()[0]
        idle = self.policy.poll_seconds * 5
        return idle if later is None else float(min(max(later - self.clock(), 0.0), idle))

    def _tidy(self, conn: sqlite3.Connection, now: float) -> None:
        """Expire what waited too long; now and then forget old finished deliveries."""
        cutoff = now - self.policy.give_up_seconds
        stale = "FROM notify_outbox WHERE state = 'pending' AND created < ?"
        if conn.execute(f"SELECT 1 {stale} LIMIT 1", (cutoff,)).fetchone() is not None:
            with transaction(conn):
                count = conn.execute(
                    f"UPDATE notify_outbox SET state = 'expired', done = ? WHERE id IN (SELECT id {stale})",
                    (now, cutoff),
                ).rowcount
            log.warning(
                "%d alert(s) could not be delivered within %.0f s and were given up", count, self.policy.give_up_seconds
            )
        if now >= self._next_prune:
            self._next_prune = now + 3600.0
            with transaction(conn):
                conn.execute(
                    "DELETE FROM notify_outbox WHERE state != 'pending' AND done < ?", (now - KEEP_DONE_SECONDS,)
                )

    def _deliver(self, conn: sqlite3.Connection, due: sqlite3.Row) -> None:
        try:
            robots.post(
                due["kind"],
                due["url"],
                due["secret"],
                due["text"],
                self.settings.allowed_hosts,
                self.policy.timeout_seconds,
            )
        except robots.DeliveryError as exc:
            failures = due["failures"] + 1
            delay = self.policy.backoff(failures)
            log.warning("channel %s: delivery failed (%s); next try in %.0f s", due["channel_id"], exc, delay)
            with transaction(conn):
                conn.execute(
                    "UPDATE notify_outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                    (str(exc), due["id"]),
                )
                conn.execute(
                    "UPDATE notify_channels SET failures = ?, retry_at = ?, last_error = ? WHERE id = ?",
                    (failures, self.clock() + delay, str(exc), due["channel_id"]),
                )
            return
        now = self.clock()
        with transaction(conn):
            conn.execute(
                "UPDATE notify_outbox SET state = 'sent', done = ?, attempts = attempts + 1 WHERE id = ?",
                (now, due["id"]),
            )
            conn.execute(
                "UPDATE notify_channels SET failures = 0, retry_at = 0, last_error = NULL, last_sent = ? WHERE id = ?",
                (now, due["channel_id"]),
            )
