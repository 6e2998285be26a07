"""Commands to the boxes: kept in hub.db until the box replies, published whenever it is online.

A command (a clip request, a live view's `media` request...) is a row of `commands` with the
contract's Command as its payload. `CommandSender` polls hub.db, like the notifier, and publishes
each unanswered command on .../cmd/<name> (QoS 1) when its box is online and has not been sent
it since it last came online: a box that was offline gets it when its status says `online` again, and again after every
reconnect until its reply arrives (a QoS 1 message in flight when the link broke may be lost with
a clean session). The box answers on .../reply with the command's id; ingest stores the reply, and
the sender marks the command replied (a clip whose box replied `ok: false` fails with its error).
The box must treat a command it has seen before as the same command (the id says so).

The sender does not own an MQTT connection: it is given a `publish(topic, payload, qos) -> bool`
(the hub's ingest client's), which says whether the message was handed to the client.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from contract.holds import RELEASE_HOLD_COMMAND
from contract.topics import QOS, topic
from hub.services import clips, holds
from hub.services.worker import PollingWorker
from hub.store import transaction

log = logging.getLogger("diaolou.hub.commands")
POLL_SECONDS = 1.0
Publish = Callable[[str, bytes, int], bool]
# Set by whoever just queued a command someone is waiting for (a timeline): the sender polls now
# rather than at its next tick. The API and the sender share the hub's process.
_WAKE = threading.Event()


def wake() -> None:
    _WAKE.set()


_REPLIED = """
SELECT c.id, c.name, r.ok, r.result, r.error, r.received FROM commands c
JOIN replies r ON r.site = c.site AND r.device = c.device AND r.id = c.id
WHERE c.replied IS NULL
"""
# Unanswered commands of online boxes not sent since the box last said it was online, and not
# expired (a live view's `media` command lives seconds: hub/media/sessions.py).
_DUE = """
SELECT c.id, c.site, c.device, c.name, c.payload FROM commands c
JOIN devices d ON d.site = c.site AND d.device = c.device
WHERE c.replied IS NULL AND d.state = 'online'
  AND (c.delivered IS NULL OR c.delivered < coalesce(d.status_received, 0))
  AND coalesce(json_extract(c.payload, '$.expires'), 1e300) > ?
ORDER BY c.created, c.id
"""

# A command past its `expires` is never sent and nothing waits for its reply any more (the viewer
# of that live view has given up): drop it, or every box offline during a live view would keep
# rows that each poll reads again.
_EXPIRED = "DELETE FROM commands WHERE replied IS NULL AND json_extract(payload, '$.expires') <= ?"


class CommandSender:
    def __init__(self, db_path: Path, publish: Publish, poll_seconds: float = POLL_SECONDS) -> None:
        self.db_path = db_path
        self.publish = publish
        self.worker = PollingWorker("hub-commands", db_path, self._step, poll_seconds, join=5, wake=_WAKE)

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def _step(self, conn: sqlite3.Connection) -> bool:
        self.run_once(conn)
        return False  # the next round after poll_seconds, or at once when woken

    def run_once(self, conn: sqlite3.Connection) -> int:
        """Settle replied commands, drop expired ones, then publish the due ones; returns how many
        were published."""
        for row in conn.execute(_REPLIED).fetchall():
            with transaction(conn):
                conn.execute(
                    "UPDATE commands SET replied = ?, status = 'replied' WHERE id = ?", (row["received"], row["id"])
                )
                if row["name"] == "clip" and not row["ok"]:
                    clips.box_refused(conn, row["id"], row["error"] or "the box refused the clip command")
                elif row["name"] == RELEASE_HOLD_COMMAND:
                    holds.box_answered(conn, row["id"], bool(row["ok"]), row["result"], row["error"])
        now = time.time()
        with transaction(conn):
            conn.execute(_EXPIRED, (now,))
        sent = 0
        for row in conn.execute(_DUE, (now,)).fetchall():
            name = topic(row["site"], row["device"], "cmd", row["name"])
            if not self.publish(name, row["payload"].encode("utf-8"), QOS["cmd"]):
                break  # not connected: the next poll tries again
            conn.execute(
                "UPDATE commands SET delivered = ?, status = 'delivered' WHERE id = ? AND replied IS NULL",
                (time.time(), row["id"]),
            )
            sent += 1
        return sent
