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

Rejections never raise: a message that breaks the contract (bad topic, oversized, not JSON, wrong
version, invalid fields) is counted in `rejections` per (site, device, cause), logged once per key,
and acknowledged like any other message so the broker does not resend it forever.

"Unauthorised" is decided by the broker: its ACL lets a device publish only under its own topic
prefix, and the contract's payloads carry no site or device of their own that could disagree with
the topic, so the topic is the only identity the hub uses.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from contract import (
    ContractError,
    Event,
    Heartbeat,
    Reply,
    Status,
    check_snapshot,
    decode,
    hub_subscriptions,
    parse_topic,
)
from contract.broker import parse_broker_url
from contract.topics import NAME, TopicError
from hub.config import HubConfig
from hub.db import HubDB
from hub.fanout import Fanout
from hub.records import Record, RecordKind

log = logging.getLogger("diaolou.hub.ingest")

_MODELS: dict[str, tuple[RecordKind, type[Status | Heartbeat | Event | Reply]]] = {
    "status": ("status", Status),
    "heartbeat": ("heartbeat", Heartbeat),
    "event": ("event", Event),
    "reply": ("reply", Reply),
}
# A batch closes early once no message has arrived for this long: under a steady stream the
# broker is waiting for our acknowledgements (its in-flight window is full), so waiting longer
# only adds latency.
_IDLE_GAP_SECONDS = 0.001
_MAX_TEXT = 200  # rejected topics and error texts are stored truncated: they come from untrusted senders
_RETRY_MAX_SECONDS = 30.0


def parse_message(
    topic: str | bytes, payload: bytes | bytearray, retained: bool, received: float, max_payload: int
) -> Record:
    """Turn one MQTT message into a Record: the validated message, or a rejection saying why not.
    Never raises for anything a sender can put on the wire."""
    try:
        text = topic.decode("utf-8") if isinstance(topic, bytes) else topic
    except UnicodeDecodeError:
        return _rejection("?", "?", received, "topic", "topic is not UTF-8", repr(topic))
    try:
        info = parse_topic(text)
    except TopicError as exc:
        site, device = _names_from_topic(text)
        return _rejection(site, device, received, "topic", str(exc), text)
    if info.kind == "snapshot":
        try:
            data = check_snapshot(bytes(payload))
        except ContractError as exc:
            return _rejection(info.site, info.device, received, exc.cause, str(exc), text)
        return Record("snapshot", info.site, info.device, received, retained=retained, name=info.name, data=data)
    kind_model = _MODELS.get(info.kind)
    if kind_model is None:  # cmd/<name>: the hub's own direction; the hub never subscribes to it
        return _rejection(info.site, info.device, received, "topic", f"the hub does not accept {info.kind}", text)
    if len(payload) > max_payload:
        message = f"payload of {len(payload)} bytes is over the hub's limit of {max_payload}"
        return _rejection(info.site, info.device, received, "oversized", message, text)
    kind, model = kind_model
    try:
        decoded = decode(model, bytes(payload))
    except ContractError as exc:
        return _rejection(info.site, info.device, received, exc.cause, str(exc), text)
    return Record(kind, info.site, info.device, received, message=decoded, retained=retained)


def _rejection(site: str, device: str, received: float, cause: str, error: str, topic: str) -> Record:
    return Record("rejection", site, device, received, cause=cause, error=error[:_MAX_TEXT], topic=topic[:_MAX_TEXT])


def _names_from_topic(topic: str) -> tuple[str, str]:
    """Best-effort site and device of a topic that does not parse, so the operator sees who sent it."""
    parts = topic.split("/")

    def clean(value: str) -> str:
        if NAME.match(value):
            return value
        printable = "".join(c if c.isprintable() else "?" for c in value)[:64]
        return printable or "?"

    return (clean(parts[2]) if len(parts) > 2 else "?", clean(parts[3]) if len(parts) > 3 else "?")


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
    dropped_qos0: int = 0  # heartbeats dropped while the writer was far behind (the next one replaces them)
    connects: int = 0
    by_cause: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


_STOP = object()


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
        self._queue: queue.Queue[_Pending | object] = queue.Queue()
        self._generation = 0
        self._closing = False
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._writer: threading.Thread | None = None
        self._qos0_backlog = 10 * config.ingest.batch_max_messages
        # Bounded: a flood of invented device names must not grow memory or the table without end.
        self._rejection_keys = db.rejection_keys()
        self._logged: set[tuple[str, str, str]] = set()
        self.client = self._make_client()

    # --- lifecycle ----------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        mq = self.config.mqtt
        client = mqtt.Client(
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
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join(timeout)
            if self._writer.is_alive():
                # Still retrying a failing commit: give up; unacknowledged messages stay at the broker.
                self._stopping.set()
                self._writer.join(5.0)
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
            record = _rejection("?", "?", time.time(), "internal", repr(exc), "?")
        self.stats.received += 1
        if msg.qos == 0 and self._queue.qsize() > self._qos0_backlog:
            # QoS 1 messages are bounded by the broker's in-flight window (nothing is acknowledged
            # while the database is stuck); QoS 0 heartbeats are not, and are worthless once stale.
            self.stats.dropped_qos0 += 1
            return
        self._queue.put(_Pending(record, msg.mid, msg.qos, self._generation))

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
            first = self._queue.get()
            if first is _STOP:
                return
            assert isinstance(first, _Pending)
            batch = [first]
            stop_after = False
            deadline = time.monotonic() + ingest.batch_max_delay_ms / 1000
            while len(batch) < ingest.batch_max_messages:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    wait = min(_IDLE_GAP_SECONDS, deadline - time.monotonic())
                    if wait <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=wait)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stop_after = True
                    break
                assert isinstance(item, _Pending)
                batch.append(item)
            self._commit(batch)
            if stop_after:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        records = [p.record for p in batch]
        delay = 0.1
        while True:
            try:
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
        self.stats.commits += 1
        generation = self._generation
        for pending in batch:
            # A message from an earlier connection is not acknowledged: the broker resends it on the
            # resumed session and the primary key absorbs the copy. A set-aside one is acknowledged:
            # it is kept in dead_letters, and a redelivery would only be refused again.
            if pending.qos > 0 and pending.generation == generation:
                self.client.ack(pending.mid, pending.qos)
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
