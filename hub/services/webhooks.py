"""Outbound connector: every incident change goes to each external registry as a signed webhook.

Signature: `X-Diaolou-Signature: sha256=<hex>`, the HMAC-SHA256 with the target's secret over
`<timestamp>.<body>`, where `X-Diaolou-Timestamp` is the send time in epoch seconds; a receiver
recomputes it and refuses a timestamp more than `REPLAY_WINDOW_SECONDS` old (`verify` below does
both). `Idempotency-Key` (also in the body) is the same on every retry of one change, so a receiver
that saw it already answers 2xx and does nothing: delivery is exactly once in effect.

Delivery: per target in queue order (a change never overtakes the one before it); a failure backs
off exponentially (`BACKOFF_*`), and a change still undelivered after `MAX_AGE_SECONDS` (two days:
a registry down for hours loses nothing) goes to the dead-letter list, whence an admin replays it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hub.security import same_secret
from hub.services import audit
from hub.services.worker import PollingWorker
from hub.store import transaction

REPLAY_WINDOW_SECONDS = 300
TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class DeliveryPolicy:
    backoff_first: float = 5.0  # seconds after the first failure, doubling
    backoff_max: float = 600.0  # a registry down for hours is tried every 10 minutes
    max_age: float = 2 * 86400.0  # then the change goes to the dead-letter list
    poll: float = 0.5


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: int = Field(description="Outbox row; replay with this id.")
    target: str = Field(description="The target's name.")
    idempotency_key: str = Field(description="The change's key.")
    attempts: int = Field(description="Tries so far.")
    last_error: str | None = Field(description="Why the last try failed.")
    created: float = Field(description="When the change was queued.")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str | None, body: bytes, signature: str | None, now: float) -> bool:
    """For a receiver: the signature matches and the timestamp is fresh (no replay)."""
    if not timestamp or not timestamp.isdigit() or abs(now - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        return False
    return same_secret(signature, sign(secret, int(timestamp), body))


def add_target(conn: sqlite3.Connection, actor: audit.Actor, name: str, url: str, secret: str) -> int:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise ValueError("the target's address must be http(s)://host/... without a user name or password")
    if len(secret) < 16:
        raise ValueError("the signing secret must be at least 16 characters")
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO webhook_targets (name, url, secret, created) VALUES (?, ?, ?, ?)",
            (name, url, secret, time.time()),
        )
        audit.record(conn, actor, "webhooks.add", name, url=url)
    return int(cur.lastrowid or 0)


def enqueue(conn: sqlite3.Connection, key: str, payload: dict[str, Any], now: float) -> int:
    """Queue one change for every enabled target; call inside the change's own transaction."""
    body = json.dumps({"idempotency_key": key, **payload}, ensure_ascii=False, sort_keys=True)
    cur = conn.execute(
        "INSERT OR IGNORE INTO webhook_outbox (target_id, idempotency_key, body, created, next_at) "
        "SELECT id, ?, ?, ?, ? FROM webhook_targets WHERE enabled = 1",
        (key, body, now, now),
    )
    return cur.rowcount


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is a failed delivery, never a post somewhere else


_OPENER = urllib.request.build_opener(_NoRedirect)


def _post(url: str, secret: str, key: str, body: bytes, now: float) -> None:
    stamp = int(now)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Diaolou-Timestamp": str(stamp),
        "X-Diaolou-Signature": sign(secret, stamp, body),
        "Idempotency-Key": key,
    }
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
        response.read(4096)


def deliver_step(conn: sqlite3.Connection, now: float, policy: DeliveryPolicy = DeliveryPolicy()) -> int:
    """Try the oldest pending change of each target whose backoff has passed; returns tries made."""
    heads = conn.execute(
        "SELECT o.id, o.idempotency_key, o.body, o.attempts, o.created, o.next_at, t.url, t.secret "
        "FROM webhook_targets t JOIN webhook_outbox o ON o.id = (SELECT min(id) FROM webhook_outbox "
        "WHERE target_id = t.id AND state = 'pending') WHERE t.enabled = 1"
    ).fetchall()
    tries = 0
    for h in heads:
        if h["next_at"] > now:
            continue
        tries += 1
        try:
            _post(h["url"], h["secret"], h["idempotency_key"], h["body"].encode(), now)
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            error = f"cannot reach the target: {getattr(exc, 'reason', exc)}"
        else:
            conn.execute(
                "UPDATE webhook_outbox SET state = 'sent', attempts = attempts + 1, done = ?, last_error = NULL "
                "WHERE id = ?",
                (now, h["id"]),
            )
            continue
        attempts = h["attempts"] + 1
        dead = now - h["created"] >= policy.max_age
        wait = min(policy.backoff_first * 2 ** (attempts - 1), policy.backoff_max)
        conn.execute(
            "UPDATE webhook_outbox SET state = ?, attempts = ?, next_at = ?, last_error = ?, done = ? WHERE id = ?",
            ("dead" if dead else "pending", attempts, now + wait, error[:300], now if dead else None, h["id"]),
        )
    return tries


def dead_letters(conn: sqlite3.Connection) -> list[DeadLetter]:
    return [
        DeadLetter(id=r[0], target=r[1], idempotency_key=r[2], attempts=r[3], last_error=r[4], created=r[5])
        for r in conn.execute(
            "SELECT o.id, t.name, o.idempotency_key, o.attempts, o.last_error, o.created FROM webhook_outbox o "
            "JOIN webhook_targets t ON t.id = o.target_id WHERE o.state = 'dead' ORDER BY o.id"
        )
    ]


def replay(conn: sqlite3.Connection, actor: audit.Actor, outbox_id: int, now: float | None = None) -> bool:
    """Put a dead change back in the queue (its age counted afresh); False if no such dead row."""
    now = time.time() if now is None else now
    with transaction(conn):
        cur = conn.execute(
            "UPDATE webhook_outbox SET state = 'pending', next_at = ?, created = ?, done = NULL "
            "WHERE id = ? AND state = 'dead'",
            (now, now, outbox_id),
        )
        if cur.rowcount:
            audit.record(conn, actor, "webhooks.replay", str(outbox_id))
    return cur.rowcount == 1


class Deliverer(PollingWorker):
    """The thread that runs `deliver_step` beside ingest."""

    def __init__(self, db_path: Path, policy: DeliveryPolicy = DeliveryPolicy()) -> None:
        def step(conn: sqlite3.Connection) -> bool:
            return deliver_step(conn, time.time(), policy) > 0

        super().__init__("webhooks", db_path, step, policy.poll, join=TIMEOUT_SECONDS + 5)
