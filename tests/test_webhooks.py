"""The outbound connector against a real local HTTP receiver: HMAC-SHA256 signatures over the
timestamp and body, a stale timestamp refused as a replay, retries with backoff while the
receiver answers 500, then every change delivered in order and applied exactly once (idempotency
keys), and the dead-letter list an admin replays. The clock is passed in, so backoff costs no
waiting."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hub.db import HubDB
from hub.models import Principal
from hub.services import audit, incidents, webhooks
from hub.services.incidents import NewIncident
from hub.services.webhooks import DeliveryPolicy, deliver_step
from hub.store import connect

SECRET = "s3cret-for-the-registry-0123"
ADMIN = Principal(user_id=1, username="admin", role="admin", locale="zh")
T0 = 1796392800.0


@dataclass
class Receiver:
    failures_left: int = 0
    clock: float = T0
    applied: list[str] = field(default_factory=list)  # idempotency keys, in the order applied
    seen: int = 0
    refused: int = 0
    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k: v for k, v in self.headers.items()}
            state.seen += 1
            state.raw.append((headers, body))
            ok = webhooks.verify(SECRET, headers.get("X-Diaolou-Timestamp"), body,
                                 headers.get("X-Diaolou-Signature"), state.clock)  # fmt: skip
            if not ok:
                state.refused += 1
                self.send_response(401)
            elif state.failures_left > 0:
                state.failures_left -= 1
                self.send_response(500)
            else:
                key = headers["Idempotency-Key"]
                assert json.loads(body)["idempotency_key"] == key
                if key not in state.applied:  # a repeat is acknowledged, not applied twice
                    state.applied.append(key)
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_port}/hook"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[object]:
    HubDB(tmp_path / "hub.db").close()
    c = connect(tmp_path / "hub.db")
    yield c
    c.close()


def _changes(conn: object) -> list[str]:
    n = incidents.create(conn, audit.CLI, NewIncident(category="intrusion", title="t"), [], T0)  # type: ignore[arg-type]
    for action in ("accept", "dispatch", "start"):
        incidents.transition(conn, ADMIN, audit.CLI, n, action, now=T0)  # type: ignore[arg-type]
    rows = conn.execute("SELECT idempotency_key FROM webhook_outbox ORDER BY id").fetchall()  # type: ignore[attr-defined]
    return [r[0] for r in rows]


def test_retries_through_500s_then_exactly_once_in_order(conn, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    webhooks.add_target(conn, audit.CLI, "registry", receiver.url, SECRET)
    keys = _changes(conn)
    assert len(keys) == 4 and keys[0].startswith("incident-1-")
    receiver.failures_left = 3
    policy = DeliveryPolicy(backoff_first=5, backoff_max=60)
    now = T0
    assert deliver_step(conn, now, policy) == 1  # 500
    assert deliver_step(conn, now + 1, policy) == 0  # backing off: nothing tried
    waits = []
    while len(receiver.applied) < len(keys):
        head = "SELECT next_at FROM webhook_outbox WHERE state = 'pending' ORDER BY id LIMIT 1"
        due = max(conn.execute(head).fetchone()[0], now)
        waits.append(due - now)
        now = due
        receiver.clock = now
        assert deliver_step(conn, now, policy) == 1
    assert waits[:4] == [5, 10, 20, 0]  # doubling backoff, then the queue flows at once
    assert receiver.applied == keys and receiver.refused == 0
    sent = conn.execute("SELECT count(*) FROM webhook_outbox WHERE state = 'sent'").fetchone()[0]
    assert sent == 4 and receiver.seen == 4 + 3
    body = json.loads(receiver.raw[-1][1])
    assert body["type"] == "incident.start" and body["incident"]["status"] == "in_progress"
    assert body["change"]["from_status"] == "dispatched"

    # A retry after a lost answer carries the same key: acknowledged, not applied twice.
    conn.execute("UPDATE webhook_outbox SET state = 'pending', next_at = 0 WHERE idempotency_key = ?", (keys[1],))
    assert deliver_step(conn, now, policy) == 1
    assert receiver.applied == keys and receiver.seen == 8
    # Replay of a captured request minutes later: the timestamp is stale, the receiver refuses it.
    headers, raw = receiver.raw[-1]
    receiver.clock = now + webhooks.REPLAY_WINDOW_SECONDS + 1
    assert not webhooks.verify(
        SECRET, headers["X-Diaolou-Timestamp"], raw, headers["X-Diaolou-Signature"], receiver.clock
    )
    # A tampered body does not verify either.
    assert not webhooks.verify(SECRET, headers["X-Diaolou-Timestamp"], raw + b" ", headers["X-Diaolou-Signature"], now)


def test_dead_letters_after_max_age_and_replay(conn, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    webhooks.add_target(conn, audit.CLI, "registry", receiver.url, SECRET)
    keys = _changes(conn)
    receiver.failures_left = 10**6  # down for hours
    policy = DeliveryPolicy(backoff_first=60, backoff_max=600, max_age=3 * 3600)
    now = T0
    tries = 0
    while not webhooks.dead_letters(conn):
        receiver.clock = now
        tries += deliver_step(conn, now, policy)
        now += 600
    dead = webhooks.dead_letters(conn)
    assert [d.idempotency_key for d in dead] == [keys[0]] and dead[0].last_error == "HTTP 500 Internal Server Error"
    assert dead[0].attempts == tries
    assert receiver.applied == []
    # The receiver is back; the rest flows, then an admin replays the dead one.
    receiver.failures_left = 0
    for _ in range(3):
        receiver.clock = now
        deliver_step(conn, now, policy)
    assert receiver.applied == keys[1:]
    assert webhooks.replay(conn, audit.CLI, dead[0].id, now)
    assert not webhooks.replay(conn, audit.CLI, dead[0].id, now)  # no longer dead
    deliver_step(conn, now, policy)
    assert receiver.applied == [*keys[1:], keys[0]] and webhooks.dead_letters(conn) == []
    assert conn.execute("SELECT count(*) FROM audit WHERE action = 'webhooks.replay'").fetchone()[0] == 1
