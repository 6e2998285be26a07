"""Hub ingest: MQTT (persistent session) -> contract validation -> SQLite (batched) -> fan-out.

How "never lost, stored once" holds on the hub side:

* Persistent session: a fixed client id with clean start off (v5: session expiry set; v3.1.1:
  clean_session false), so the broker queues QoS 1 messages while the hub is down and hands them
  over when it reconnects.
* Acknowledge after commit: paho normally sends the PUBACK as soon as `on_message` returns. With
  `manual_ack` the hub acknowledges a message only once the SQLite transaction holding it has
  committed, so a hub killed at any moment leaves every uncommitted message unacknowledged at the
  broker, which delivers it again. Committing inside `on_message` would also be safe but costs a
  commit (and a disk flush) per message; batching many messages per commit is what makes
  thousands of events per second possible.
* Idempotent storage: a message delivered again (acknowledged too late, or published twice by an
  agent that lost the broker's PUBACK) hits the primary key and is ignored (db.HubDB.write).

Bounded memory, backpressure and batching (a burst from hundreds of boxes at once):

* paho's network thread hands each message to the writer through `_Inbox`, which counts it until
  it is committed: at most `ingest.queue_max_messages`, the batch being written included. When
  that many are held, `on_message` blocks: paho's thread stops reading the socket, TCP's flow
  control stops the broker, and the broker keeps the rest. Nothing is dropped, QoS 0 included.
  The broker's in-flight window alone does not bound it: in a burst from 200 agents Mosquitto
  2.0.11 had 1,384 messages waiting at the hub against a receive maximum of 1,000.
* The writer commits a batch when it holds `batch_max_messages`, when its first message has
  waited `batch_max_delay_ms`, or as soon as no message has arrived for a millisecond (the broker
  is then waiting for our acknowledgements). On a busy machine a thousand events can take a few
  hundred milliseconds to commit, holding every row back from readers and every acknowledgement
  back from the broker: batches are cut to what the last commits say fits in 0.1 s.
* A batch of heartbeats alone (QoS 0: nothing waits for their acknowledgement) stays open for
  `heartbeat_batch_ms` instead, so the heartbeats of a thousand boxes share a commit rather than
  take one each; the first event, status or reply puts the batch back on the rules above.

Rejections never raise: a message that breaks the contract (bad topic, oversized, not JSON, wrong
version, invalid fields) is counted in `rejections` per (site, device, cause), logged once per key,
and acknowledged like any other message so the broker does not resend it forever.

"Unauthorised" is decided by the broker: its ACL lets a device publish only under its own topic
prefix, and the contract's payloads carry no site or device of their own that could disagree with
the topic, so the topic is the only identity the hub uses.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from contract import (
    hub_subscriptions,
)
from contract.broker import parse_broker_url
from hub.config import HubConfig
from hub.db import HubDB
from hub.fanout import Fanout
from hub.parse import HubClient, parse_message, rejection
from hub.records import Record

log = logging.getLogger("diaolou.hub.ingest")

# A batch with an event in it closes early once no message has arrived for this long: under a
# steady stream the broker is waiting for our acknowledgements (its in-flight window is full), so
# waiting longer only adds latency.
_IDLE_GAP_SECONDS = 0.001
# Batches are cut to what the last commits say fits in this time (see the module docstring),
# but never below _MIN_BATCH: a commit has a fixed cost (a disk flush) too.
_COMMIT_TARGET_SECONDS = 0.1
_MIN_BATCH = 50
_RETRY_MAX_SECONDS = 30.0
# An MQTT PUBACK without reason code or properties (success, in v3.1.1 and v5 alike): fixed header
# 0x40, remaining length 2, packet id.
_PUBACK = struct.Struct("!BBH")
_PUBACK_COMMAND = 0x40


@dataclass
class _Pending:
    record: Record
    mid: int
    qos: int
    generation: int  # the connection it arrived on: its packet id means nothing on another one


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0  # records that changed the database (new events and replies, statuses, heartbeats)
    duplicates: int = 0  # events and replies delivered again and ignored
    rejected: int = 0
    commits: int = 0
    set_aside: int = 0  # refused by the database although they passed the contract: kept in dead_letters
    uncommitted: int = 0  # abandoned at stop after a database failure: the broker delivers them again
    queue_peak: int = 0  # most messages waiting for the writer at once (at most ingest.queue_max_messages)
    held_back_seconds: float = 0.0  # time the network thread stopped reading because the writer was behind
    connects: int = 0
    by_cause: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


class _Inbox:
    """The bounded hand-over from paho's network thread to the writer (see the module docstring).

    It counts a message from `put` until the writer reports it committed (`done`), so
    `capacity` bounds what the hub holds uncommitted, the batch being written included. `put`
    waits while that many are held. `close` (at stop) releases a waiting `put`, whose message is
    then refused (left unacknowledged, for the broker to deliver again), while `take` still
    returns what was accepted before."""

    def __init__(self, capacity: int, stats: IngestStats) -> None:
        self.capacity = capacity
        self._stats = stats
        self._items: deque[_Pending] = deque()
        self._held = 0  # waiting plus taken but not yet done
        self._cond = threading.Condition()
        self._closed = False
        self._want = 0  # what the waiting writer waits for (0: it is not waiting)
        self._urgent_wakes = False

    def put(self, item: _Pending) -> bool:
        with self._cond:
            if self._held >= self.capacity and not self._closed:
                began = time.monotonic()
                while self._held >= self.capacity and not self._closed:
                    self._cond.wait()
                self._stats.held_back_seconds += time.monotonic() - began
            if self._closed:
                return False
            self._items.append(item)
            self._held += 1
            self._stats.queue_peak = max(self._stats.queue_peak, self._held)
            # Wake the writer only when what it waits for is there, not for every message.
            if self._urgent_wakes and item.qos > 0:
                self._urgent_wakes = False  # tells the waiting writer; see take()
                self._cond.notify_all()
            elif self._want and len(self._items) >= self._want:
                self._cond.notify_all()
            return True

    def take(
        self, limit: int, timeout: float | None, *, fill: bool = False, urgent_wakes: bool = False
    ) -> tuple[list[_Pending], bool]:
        """Up to `limit` messages, and whether the inbox is closed (nothing more will come once
        it is empty). Waits up to `timeout` s (None: as long as it takes) for a first message, or
        with `fill` for `limit` of them; `urgent_wakes` ends the wait early when a message
        arrives that waits for its acknowledgement (QoS 1)."""
        with self._cond:
            want = limit if fill else 1
            if len(self._items) < want and not self._closed:
                self._want, self._urgent_wakes = want, urgent_wakes
                try:
                    self._cond.wait_for(
                        lambda: self._closed or len(self._items) >= want or (urgent_wakes and not self._urgent_wakes),
                        timeout,
                    )
                finally:
                    self._want, self._urgent_wakes = 0, False
            items = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
            return items, self._closed

    @property
    def held(self) -> int:
        """Messages received and not yet committed."""
        return self._held

    def done(self, count: int) -> None:
        """`count` taken messages are committed (or given up): room for as many new ones."""
        with self._cond:
            self._held -= count
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Ingest:
    """One paho client (network thread) feeding one writer thread (SQLite).

    `start()` returns at once; the client connects and reconnects by itself. `stop()` stops taking
    new messages, commits and acknowledges what was received, then disconnects. Messages that
    arrive while stopping are left unacknowledged: the broker keeps them for the next run.
    """

    def __init__(self, config: HubConfig, db: HubDB, fanout: Fanout[Record] | None = None) -> None:
        self.config = config
        self.db = db
        self.fanout: Fanout[Record] = fanout if fanout is not None else Fanout()
        self.stats = IngestStats()
        self._address = parse_broker_url(config.mqtt.url)
        self._v5 = config.mqtt.protocol == "v5"
        self._inbox = _Inbox(config.ingest.queue_max_messages, self.stats)
        self._generation = 0
        self._closing = False
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._writer: threading.Thread | None = None
        self._record_seconds = 0.0  # what committing one record costs (see _batch_limit)
        # Bounded: a flood of invented device names must not grow memory or the table without end.
        self._rejection_keys = db.rejection_keys()
        self._logged: set[tuple[str, str, str]] = set()
        self.client = self._make_client()

    # --- lifecycle ----------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        mq = self.config.mqtt
        client = HubClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=mq.client_id,
            # v3.1.1: a persistent session. (v5 takes clean_start at connect instead; None is required.)
            clean_session=None if self._v5 else False,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            manual_ack=True,
        )
        if self._address.username is not None:
            client.username_pw_set(self._address.username, self._address.password)
        if self._address.tls:
            client.tls_set(ca_certs=str(mq.ca_file) if mq.ca_file else None)
        client.reconnect_delay_set(1, mq.reconnect_max_seconds)
        client.enable_logger(logging.getLogger("diaolou.hub.paho"))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def busy(self) -> bool:
        """Ingest is working through a burst (its queue half full): the hub's other readers of new
        events step aside for a moment (hub/services/worker.py, GiveWay)."""
        return self._inbox.held >= self._inbox.capacity // 2

    def start(self) -> None:
        mq = self.config.mqtt
        properties = None
        clean_start: bool | Literal[3] = mqtt.MQTT_CLEAN_START_FIRST_ONLY
        if self._v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = mq.session_expiry_seconds
            properties.ReceiveMaximum = mq.receive_maximum
            clean_start = False  # resume the session: messages queued while the hub was down come now
        self._writer = threading.Thread(target=self._write_loop, name="diaolou-hub-writer", daemon=True)
        self._writer.start()
        log.info("connecting to %s as %s (%s)", self._address.display(), mq.client_id, mq.protocol)
        self.client.connect_async(
            self._address.host, self._address.port, mq.keepalive_seconds, clean_start=clean_start, properties=properties
        )
        self.client.loop_start()

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and acknowledge what was received, then disconnect (the session stays at the broker)."""
        self._closing = True
        self._inbox.close()
        if self._writer is not None:
            self._writer.join(timeout)
            if self._writer.is_alive():
                # Still retrying a failing commit: give up; unacknowledged messages stay at the broker.
                self._stopping.set()
                self._writer.join(5.0)
        # paho 2.2's network thread may run one more loop between disconnect() and loop_stop() and
        # log "Client is not connected" as an ERROR: a shutdown is not an error, so it is not logged.
        self.client.disable_logger()
        self.client.disconnect()
        self.client.loop_stop()
        log.info("ingest stopped: %s", self.stats.as_dict())

    # --- paho callbacks (network thread) ------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        self._generation += 1
        self.stats.connects += 1
        log.info("connected (session present: %s)", flags.session_present)
        # Subscribing again on a resumed session is harmless and repairs a session the broker lost.
        qos = 1
        topics: list[tuple[str, Any]] = [
            (t, SubscribeOptions(qos=qos) if self._v5 else qos) for t in hub_subscriptions()
        ]
        client.subscribe(topics)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("broker refused subscriptions (ACL?): %s", ", ".join(failed))
            return
        log.info("subscribed to %s", ", ".join(hub_subscriptions()))
        self._subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags, reason: ReasonCode, props: Any
    ) -> None:
        self._subscribed.clear()
        if not self._closing:
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # paho lets an exception escape into its network thread and stop it: nothing may raise here.
        if self._closing:
            return  # not acknowledged: the broker delivers it to the next run
        try:
            try:
                topic: str | bytes = msg.topic
            except UnicodeDecodeError:
                topic = bytes(msg._topic)
            record = parse_message(
                topic, msg.payload, bool(msg.retain), time.time(), self.config.limits.max_payload_bytes
            )
            if record.kind == "rejection":
                record = self._account_rejection(record)
        except Exception as exc:  # a bug, not a sender's fault; still count it and keep going
            log.exception("cannot handle a message")
            record = rejection("?", "?", time.time(), "internal", repr(exc), "?")
        self.stats.received += 1
        # Blocks while the writer is behind: this thread then stops reading from the broker.
        self._inbox.put(_Pending(record, msg.mid, msg.qos, self._generation))

    def _account_rejection(self, record: Record) -> Record:
        cause = record.cause or "?"
        limits = self.config.limits
        key = (record.site, record.device, cause)
        if key not in self._rejection_keys:
            if len(self._rejection_keys) >= limits.max_rejection_keys:
                record = Record(
                    "rejection", "*", "*", record.received, cause=cause, error=record.error, topic=record.topic
                )
                key = ("*", "*", cause)
            self._rejection_keys.add(key)
        self._count_rejection(record)
        if limits.rejection_log == "every" or (limits.rejection_log == "once" and key not in self._logged):
            self._logged.add(key)
            more = " (further ones are counted, not logged)" if limits.rejection_log == "once" else ""
            log.warning(
                "rejected a message from %s/%s: %s: %s%s", record.site, record.device, record.cause, record.error, more
            )
        return record

    def _count_rejection(self, record: Record) -> None:
        cause = record.cause or "?"
        self.stats.rejected += 1
        self.stats.by_cause[cause] = self.stats.by_cause.get(cause, 0) + 1

    # --- writer thread ------------------------------------------------------------------------
    def _write_loop(self) -> None:
        ingest = self.config.ingest
        while True:
            limit = self._batch_limit()
            batch, closed = self._inbox.take(limit, None)
            if not batch:
                return  # closed and drained
            urgent = any(p.qos > 0 for p in batch)
            opened = time.monotonic()
            deadline = opened + (ingest.batch_max_delay_ms if urgent else ingest.heartbeat_batch_ms) / 1000
            while len(batch) < limit and not closed:
                wait = deadline - time.monotonic()
                if urgent:
                    wait = min(wait, _IDLE_GAP_SECONDS)
                if wait <= 0:
                    break
                more, closed = self._inbox.take(limit - len(batch), wait, fill=True, urgent_wakes=not urgent)
                if not more:
                    if urgent:
                        break  # idle: the broker waits for our acknowledgements
                    continue
                if not urgent and any(p.qos > 0 for p in more):
                    # Something waits for its acknowledgement now: the heartbeat window ends.
                    urgent = True
                    deadline = min(deadline, time.monotonic() + ingest.batch_max_delay_ms / 1000)
                batch += more
            try:
                self._commit(batch)
            finally:
                self._inbox.done(len(batch))

    def _acknowledge(self, batch: list[_Pending]) -> None:
        """Acknowledge a committed batch. A message from an earlier connection is not acknowledged:
        the broker resends it on the resumed session and the primary key absorbs the copy. A
        set-aside one is acknowledged: it is kept in dead_letters, and a redelivery would only be
        refused again.

        The PUBACKs of a batch go to paho as one packet (what `Client.ack` would queue one by one,
        each with a debug log and a write to paho's wake-up socket: a system call that lets go of
        the GIL, which the writer then waits for while paho's thread reads the next messages)."""
        generation = self._generation
        mids = []
        for pending in batch:
            if pending.qos > 0 and pending.generation == generation:
                if pending.qos == 1:
                    mids.append(pending.mid)
                else:
                    self.client.ack(pending.mid, pending.qos)
        if not mids:
            return
        queue = getattr(self.client, "_packet_queue", None)  # paho 2.x; pyproject pins paho-mqtt < 3
        if queue is None:
            for mid in mids:
                self.client.ack(mid, 1)
            return
        pack = _PUBACK.pack
        queue(_PUBACK_COMMAND, b"".join([pack(_PUBACK_COMMAND, 2, mid) for mid in mids]), 0, 1)

    def _batch_limit(self) -> int:
        most = self.config.ingest.batch_max_messages
        if self._record_seconds <= 0:
            return most
        return max(min(_MIN_BATCH, most), min(most, int(_COMMIT_TARGET_SECONDS / self._record_seconds)))

    def _commit(self, batch: list[_Pending]) -> None:
        records = [p.record for p in batch]
        delay = 0.1
        retried = False
        while True:
            try:
                began = time.monotonic()
                result = self.db.write(records)
                break
            except Exception:
                # Disk full, a locked or broken database: keep the batch and try again. Nothing is
                # acknowledged meanwhile, so the broker stops sending once its in-flight window is full.
                # (A record the database refuses is not retried here: db.write sets it aside.)
                log.exception("cannot commit %d messages; retrying in %.1f s", len(batch), delay)
                if self._stopping.wait(delay):
                    self.stats.uncommitted += len(batch)
                    return
                delay = min(delay * 2, _RETRY_MAX_SECONDS)
                retried = True
        self.stats.commits += 1
        self._acknowledge(batch)
        if not retried:  # a retry's pauses are no measure of the next batch
            # What one record costs to write and acknowledge, smoothed over the last few batches.
            cost = (time.monotonic() - began) / len(records)
            self._record_seconds = cost if self._record_seconds <= 0 else 0.7 * self._record_seconds + 0.3 * cost
        for record in result.rejected:
            self._count_rejection(record)
        for record in result.set_aside:
            self._count_rejection(Record("rejection", record.site, record.device, record.received, cause="unstorable"))
            log.error(
                "set aside a %s from %s/%s that the database refused (see `diaolou-hub dead-letters`)",
                record.kind,
                record.site,
                record.device,
            )
        changed = result.changed
        stored = sum(1 for r in changed if r.kind != "rejection")
        self.stats.stored += stored
        self.stats.set_aside += len(result.set_aside)
        self.stats.duplicates += (
            sum(1 for r in records if r.kind in ("event", "reply"))
            - sum(1 for r in changed if r.kind in ("event", "reply"))
            - sum(1 for r in result.set_aside if r.kind in ("event", "reply"))
        )
        for record in changed:
            self.fanout.publish(record)
