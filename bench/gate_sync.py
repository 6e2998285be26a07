"""Allow-list sync benchmark (issue "dormitory access control"): hub -> Mosquitto -> gate.

A hub.db with 10,000 residents and cards in one building, a gate box bound to it, a real
Mosquitto (tests/support/brokers.py), and the gate's receiver on its own MQTT session writing a
fresh gate.db. Two paths are timed, taking turns round by round so a busy machine slows both:

* full-list sync: the hub builds the snapshot of 10,000 cards, signs it, cuts it into parts,
  publishes them; the gate collects the parts, checks digest and signature and the version,
  inflates and writes the list in one transaction. Timed from the start of the build to the
  moment the gate's transaction committed.
* revocation: a card is revoked (the service call a dorm manager's button makes), the hub builds
  and signs the delta since the gate's version, publishes it, the gate verifies and applies it.
  Timed from the commit of the revocation at the hub to the commit at the gate. The running hub
  adds its poll (hub/access_sync.py POLL_SECONDS, 0.2 s: on average half of it) on top.

The delta is the peer of the snapshot: what a revocation would cost if the hub re-sent the whole
list instead. Goal (the issue's): a revocation reaches an online gate within 2 s. Prints a
markdown table and writes it to bench/results/gate_sync.md; exit status 1 if the goal is missed.

    .venv/bin/python bench/gate_sync.py [--cards 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from contract import topic  # noqa: E402
from edge_agent.gate.store import list_version, open_db  # noqa: E402
from edge_agent.gate.sync import Applied, ListReceiver  # noqa: E402
from hub.access_sync import POLL_SECONDS, build_list, list_key, list_public_key, sign_list  # noqa: E402
from hub.services import audit, cards  # noqa: E402
from hub.store import connect, open_store  # noqa: E402
from tests.support.residents import fill_residents  # noqa: E402

RESULTS = REPO / "bench" / "results"
WORK = REPO / "bench" / "work" / "gate_sync"
SITE, DEVICE = "dorms", "b07-gate"
GOAL_S = 2.0


def make_hub(data_dir: Path, n: int) -> None:
    open_store(data_dir / "hub.db")
    conn = connect(data_dir / "hub.db")
    cards.set_door(conn, audit.CLI, SITE, DEVICE, "b07-east", "b07")
    fill_residents(conn, n)
    conn.close()


class GateSide:
    """The gate's receiver on its own MQTT session; `applied` fires when a list is committed."""

    def __init__(self, port: int, gate_db: Path, key_b64: str) -> None:
        self.db = open_db(gate_db)
        self.receiver = ListReceiver(self.db, SITE, DEVICE, key_b64)
        self.applied = threading.Event()
        self.last: Applied | None = None
        self.at = 0.0
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-gate", protocol=mqtt.MQTTv5)
        self.client.on_message = self._message
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topic(SITE, DEVICE, "acl"), qos=1)
        if not subscribed.wait(10):
            raise SystemExit("the gate's subscription was not acknowledged")

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        result = self.receiver.receive(message.payload)
        if result is not None:
            self.last, self.at = result, time.perf_counter()
            self.applied.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
        self.db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from tests.support.brokers import Broker

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    data_dir = WORK / "hub"
    data_dir.mkdir()
    make_hub(data_dir, args.cards)
    broker = Broker("mosquitto", WORK / "broker").start()
    key = list_key(data_dir)
    gate = GateSide(broker.port, WORK / "gate.db", list_public_key(data_dir))
    hub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-hub", protocol=mqtt.MQTTv5)
    hub.connect("127.0.0.1", broker.port)
    hub.loop_start()
    conn = connect(data_dir / "hub.db")
    full: list[float] = []
    delta: list[float] = []
    apply_full: list[float] = []
    sizes: tuple[int, int] = (0, 0)

    def send(base: int | None, started: float) -> float:
        gate.applied.clear()
        gate_list = build_list(conn, SITE, DEVICE, base)
        payloads = sign_list(key, gate_list)
        for payload in payloads:
            hub.publish(topic(SITE, DEVICE, "acl"), payload, qos=1)
        if not gate.applied.wait(60):
            raise SystemExit(f"the gate did not apply the {gate_list.kind} (see the log above)")
        nonlocal sizes
        if base is None:
            sizes = (len(payloads), sum(len(p) for p in payloads))
        return gate.at - started

    try:
        for i in range(args.rounds):
            # Full list: bump the building's version first (a snapshot must be newer than the gate's).
            cards.set_state(conn, audit.CLI, None, 2 * i + 1, "suspended")
            full.append(send(None, time.perf_counter()))
            assert gate.last is not None and gate.last.entries == args.cards - i  # minus the ones revoked
            apply_full.append(gate.last.seconds)
            # Revocation: committed at the hub, then the delta.
            started = time.perf_counter()
            cards.set_state(conn, audit.CLI, None, 2 * i + 2, "revoked")
            delta.append(send(list_version(gate.db), started))
            assert gate.last is not None and gate.last.entries == 1
    finally:
        hub.loop_stop()
        hub.disconnect()
        gate.close()
        conn.close()
        broker.stop()

    def row(name: str, values: list[float]) -> str:
        ms = sorted(v * 1000 for v in values)
        return f"| {name} | {statistics.median(ms):.0f} | {ms[-1]:.0f} | {len(ms)} |"

    median_full, median_delta = statistics.median(full), statistics.median(delta)
    worst = max(delta) + POLL_SECONDS
    lines = [
        f"# Allow-list sync: {args.cards:,} cards, hub -> Mosquitto -> gate",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, Python {platform.python_version()}, "
        f"{args.rounds} rounds taking turns. Snapshot on the wire: {sizes[0]} parts, {sizes[1]:,} bytes.",
        "",
        "| path | median ms | max ms | rounds |",
        "|---|---|---|---|",
        row(f"full-list sync ({args.cards:,} cards: build, sign, publish, verify, apply)", full),
        row("  of which the gate's verify and apply", apply_full),
        row("revocation (commit at the hub to commit at the gate, one-card delta)", delta),
        "",
        f"The delta is {median_full / median_delta:.0f}x faster than re-sending the full list. Worst revocation "
        f"plus the running hub's poll ({POLL_SECONDS:.1f} s): {worst * 1000:.0f} ms; goal < {GOAL_S * 1000:.0f} ms: "
        f"{'met' if worst < GOAL_S else 'MISSED'}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gate_sync.md").write_text(text, encoding="utf-8")
    return 0 if worst < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
