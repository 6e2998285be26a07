"""The agent's MQTT link: ships the outbox to the broker in order, deletes a row only on its PUBACK.

Threads:
- paho's network thread (loop_start) connects, reconnects with capped exponential backoff and
  runs the callbacks;
- the sender thread takes outbox rows in seq order and publishes them QoS 1 with a bounded
  in-flight window; it alone touches the outbox for sending and acking;
- the heartbeat thread publishes a Heartbeat (QoS 0, never queued) every heartbeat_seconds.

Order after a reconnect: paho would re-send its own unacknowledged messages on the new
connection, and we would re-send them from the outbox as well, interleaved. Instead the
on_connect callback drops paho's copies (`drop_out_messages`) and starts a new "epoch"; the
sender then re-sends from the oldest unacknowledged row. Duplicates are possible (a message
whose PUBACK was lost), reordering is not (but see refusals below): the hub is idempotent on
(event id, phase, seq).

A message the broker refuses (a v5 PUBACK with a failure reason: not authorised by the ACL,
quota exceeded) stays in the outbox and is published again on the same connection after a
pause that doubles from 1 s up to 60 s while the broker keeps refusing, so a broker fixed
without a restart (an ACL reloaded with SIGHUP) gets it without waiting for a reconnect. The
messages behind it are not held up meanwhile; the retried one then arrives after them.

Locks: paho calls on_publish and sometimes on_disconnect while holding its own message mutex,
and publish() takes that mutex, so those callbacks never take `_lock` (the sender holds it
while publishing). They only append to a deque / set flags, which is safe under the GIL.
"""

from __future__ import annotations

import logging
import ssl
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from contract import Heartbeat, Status, encode, topic
from contract.broker import parse_broker_url
from edge_agent import __version__
from edge_agent.comms.outbox import Outbox
from edge_agent.comms.sender_state import SenderState
from edge_agent.comms.writer import event_priority as event_priority  # where comms/__init__ finds it
from edge_agent.config.schema import AgentConfig, MqttConfig

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 20
REFUSED_RETRY_MIN_SECONDS = 1.0  # a refused message is published again after this, doubling ...
REFUSED_RETRY_MAX_SECONDS = 60.0  # ... up to this while the broker keeps refusing
OFFLINE_POLL_SECONDS = 10.0  # the sender's poll while disconnected: only paho's thread to watch

# Reason codes (MQTT v5 numbering; paho maps v3.1.1 CONNACK codes onto them) that mean the
# broker will keep refusing until someone fixes the config: say so plainly.
_CREDENTIALS = {"Bad user name or password", "Not authorized"}


@dataclass(frozen=True)
class LinkStats:
    connected: bool
    attempts: int  # connection attempts (TCP + CONNECT), successful or not
    connects: int  # successful CONNACKs
    reconnects: int  # connects after the first
    sent: int  # outbox messages handed to the broker (re-sends included)
    acked: int  # outbox rows deleted on PUBACK
    refused: int  # PUBACKs with a failure reason (v5: e.g. not authorised); those rows stay queued
    in_flight: int
    heartbeats: int
    last_error: str | None


class MqttLink:
    """One MQTT session for one device. `start()` returns at once; the link connects (and keeps
    reconnecting) in the background and never raises for broker trouble: it logs it."""

    def __init__(
        self,
        mqtt_config: MqttConfig,
        site: str,
        device: str,
        outbox: Outbox,
        *,
        cameras: Sequence[str] = (),
        heartbeat: Callable[[], Heartbeat] | None = None,
        window: int = DEFAULT_WINDOW,
        poll_seconds: float = 1.0,
        reconnect_min_seconds: int = 1,
        reconnect_max_seconds: int = 30,
        refused_retry_min_seconds: float = REFUSED_RETRY_MIN_SECONDS,
        refused_retry_max_seconds: float = REFUSED_RETRY_MAX_SECONDS,
    ) -> None:
        self.config = mqtt_config
        self.site, self.device = site, device
        self.outbox = outbox
        self.cameras = list(cameras)
        self.heartbeat_source = heartbeat
        self.window = max(1, window)
        self.poll_seconds = poll_seconds
        self.refused_retry_min_seconds = refused_retry_min_seconds
        self.refused_retry_max_seconds = max(refused_retry_min_seconds, refused_retry_max_seconds)
        self.address = parse_broker_url(mqtt_config.url)
        self.client_id = mqtt_config.client_id or f"diaolou-{site}-{device}"
        self.status_topic = topic(site, device, "status")
        self.event_topic = topic(site, device, "event")
        self.heartbeat_topic = topic(site, device, "heartbeat")

        self._v5 = mqtt_config.protocol == "v5"
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            # The outbox is our persistence; a broker-side session would only add a second copy.
            clean_session=None if self._v5 else True,
        )
        # A bug in a callback must not kill paho's network thread (and with it the link).
        self._client.suppress_exceptions = True
        if self.address.username is not None:
            self._client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            ca = str(mqtt_config.ca_file) if mqtt_config.ca_file else None
            self._client.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)  # None: the system's CAs
        self._client.reconnect_delay_set(max(1, reconnect_min_seconds), max(1, reconnect_max_seconds))
        self._client.max_inflight_messages_set(0)  # our window bounds it; paho must never hold rows back
        self._set_will()
        self._client.on_pre_connect = self._on_pre_connect
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

        self._lock = threading.Lock()  # epoch switch vs the sender's check-publish-record
        self._epoch = 0
        self._connected = False
        self._stopping = False
        self._effective_window = self.window
        self._acks: deque[tuple[int, int, str | None]] = deque()  # (epoch, mid, refusal) from on_publish
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._in_flight = 0
        self._subscriptions: dict[str, tuple[int, Callable[[str, bytes], None]]] = {}
        self._threads: list[threading.Thread] = []
        self._started = False
        self._problem: str | None = None
        self._warned: set[str] = set()
        self._counts = {"attempts": 0, "connects": 0, "sent": 0, "acked": 0, "refused": 0, "heartbeats": 0}

    @classmethod
    def for_agent(cls, config: AgentConfig, outbox: Outbox, **kwargs: Any) -> MqttLink:
        return cls(config.mqtt, config.site, config.device, outbox, cameras=list(config.cameras), **kwargs)

    # --- public API ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._stopping:
            raise RuntimeError("a stopped MqttLink cannot be restarted: make a new one")
        if self._started:
            return
        self._started = True
        self._client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=self.config.keepalive_seconds,
            # v5: start clean on every connect (v3.1.1 uses clean_session above).
            clean_start=True if self._v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        )
        self._client.loop_start()
        self._spawn(self._run_sender, "mqtt-sender")
        if self.heartbeat_source is not None:
            self._spawn(self._run_heartbeats, "mqtt-heartbeat")
        log.info("MQTT link to %s as %s started", self.address.display(), self.client_id)

    def stop(self, timeout: float = 5.0) -> None:
        """Wait briefly for in-flight PUBACKs, say offline (clean) and disconnect. Unsent rows stay queued."""
        if not self._started:
            return
        self._started = False
        self._stopping = True
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        if self._connected:
            info = self._client.publish(self.status_topic, self._status("offline", clean=True), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("could not publish the offline status before disconnecting: %s", exc)
        # Unacknowledged messages would keep paho's loop running until acked; they are in the outbox.
        self._client.drop_out_messages()
        self._client.disconnect()  # a DISCONNECT packet: the broker discards the last will
        stopper = threading.Thread(target=self._client.loop_stop, name="mqtt-loop-stop", daemon=True)
        stopper.start()
        stopper.join(timeout)
        if stopper.is_alive():
            log.error("MQTT network thread did not stop within %.0f s", timeout)
        self._connected = False
        log.info("MQTT link stopped (%d messages still queued)", self.outbox.depth)

    def notify(self) -> None:
        """Something was enqueued: send it now instead of at the next poll."""
        self._wake.set()

    def publish_heartbeat(self, heartbeat: Heartbeat) -> bool:
        """QoS 0, not queued: a lost heartbeat is replaced by the next one. False when offline."""
        if not self._connected:
            return False
        info = self._client.publish(self.heartbeat_topic, encode(heartbeat), qos=0)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._counts["heartbeats"] += 1
            return True
        return False

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes], None], qos: int = 1) -> None:
        """Receive messages (e.g. commands) on this session; renewed on every reconnect."""
        self._subscriptions[topic_filter] = (qos, handler)
        if self._connected:
            self._client.subscribe(topic_filter, qos)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def last_error(self) -> str | None:
        """The current connection problem in words, None while connected."""
        return self._problem

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._connected and time.monotonic() < deadline:
            time.sleep(0.05)
        return self._connected

    def stats(self) -> LinkStats:
        c = self._counts
        return LinkStats(
            connected=self._connected,
            attempts=c["attempts"],
            connects=c["connects"],
            reconnects=max(0, c["connects"] - 1),
            sent=c["sent"],
            acked=c["acked"],
            refused=c["refused"],
            in_flight=self._in_flight,
            heartbeats=c["heartbeats"],
            last_error=self._problem,
        )

    # --- paho callbacks (network thread) ------------------------------------------------------
    def _status(self, state: str, clean: bool) -> bytes:
        return encode(
            Status(
                state="online" if state == "online" else "offline",
                time=time.time(),
                agent_version=__version__,
                cameras=self.cameras,
                clean=clean,
            )
        )

    def _set_will(self) -> None:
        self._client.will_set(self.status_topic, self._status("offline", clean=False), qos=1, retain=True)

    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        self._counts["attempts"] += 1
        self._guard(self._set_will)  # the will carries the time this session began

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, props: Properties | None
    ) -> None:
        self._guard(self._handle_connect, reason, props)

    def _handle_connect(self, reason: ReasonCode, props: Properties | None) -> None:
        if reason.is_failure:
            name = reason.getName()
            hint = ""
            if name in _CREDENTIALS:
                hint = " (the user name or password in mqtt.url is wrong, or the broker does not allow this device)"
            self._report(
                f"broker {self.address.display()} refused the connection: {name}{hint}", "messages stay queued"
            )
            return
        if self._stopping:
            return  # connected while stop() ran: saying online now would leave a stale retained status
        receive_max = getattr(props, "ReceiveMaximum", None) if props is not None else None
        with self._lock:
            # Re-sending is ours (from the outbox, oldest first); paho's copies would interleave.
            self._client.drop_out_messages()
            self._epoch += 1
            # Stay under the broker's receive maximum (v5), keeping room for the status message.
            self._effective_window = min(self.window, max(1, receive_max - 1)) if receive_max else self.window
            self._connected = True
            self._counts["connects"] += 1
            # Subscribe first: whoever sees "online" may send a command at once.
            for topic_filter, (qos, _) in self._subscriptions.items():
                self._client.subscribe(topic_filter, qos)
            self._client.publish(self.status_topic, self._status("online", clean=True), qos=1, retain=True)
        if self._problem is not None:
            log.warning("MQTT link to %s restored", self.address.display())
        else:
            log.info("MQTT connected to %s", self.address.display())
        self._problem = None
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # Called from inside paho's `except OSError`, so the exception is still the current one.
        exc = sys.exc_info()[1]
        self._guard(
            self._report,
            f"cannot reach broker {self.address.display()}: {exc or 'connection failed'}",
            "retrying with backoff; messages stay queued",
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags, reason: ReasonCode, props: Any
    ) -> None:
        was_connected, self._connected = self._connected, False  # no lock: see the module docstring
        if was_connected and not self._stopping:
            self._guard(
                self._report,
                f"lost the connection to {self.address.display()} ({reason})",
                f"{self._in_flight} unacknowledged messages will be re-sent after reconnecting",
            )

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Properties) -> None:
        # paho holds its message mutex here: only record it; the sender thread does the rest.
        self._acks.append((self._epoch, mid, reason.getName() if reason.is_failure else None))
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        for topic_filter, (_, handler) in list(self._subscriptions.items()):
            if mqtt.topic_matches_sub(topic_filter, message.topic):
                self._guard(handler, message.topic, bytes(message.payload))

    def _report(self, problem: str, consequence: str) -> None:
        """Log a connection problem once, not on every retry; `last_error` keeps the problem alone."""
        if problem != self._problem:
            log.error("%s; %s", problem, consequence)
        self._problem = problem

    def _warn_once(self, problem: str) -> None:
        if problem not in self._warned:
            self._warned.add(problem)
            log.warning("%s", problem)

    def _guard(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("MQTT link: unexpected error in %s", getattr(fn, "__name__", fn))

    # --- sender thread ------------------------------------------------------------------------
    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run_sender(self) -> None:
        # Everything in this process that gives the sender work sets `_wake` (enqueue, PUBACK,
        # connect, stop); the poll is for rows another process put in the outbox (`test-alarm`)
        # and for watching paho's thread. Each idle wake-up costs CPU on a box that mostly
        # records, so it is once a second, not more.
        state = SenderState(retry_delay=self.refused_retry_min_seconds)
        drain_deadline: float | None = None
        while True:
            # Offline (a village uplink can be down for days) there is nothing to send until
            # on_connect wakes the sender; only paho's thread is still watched, now and then.
            wait = self.poll_seconds if self._connected else max(self.poll_seconds, OFFLINE_POLL_SECONDS)
            if state.retry_at is not None and self._connected:
                wait = min(wait, max(0.0, state.retry_at - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()
            try:
                self._watch_network_thread()
                self._process_acks(state)
                if self._stop.is_set():
                    # Give in-flight messages a moment to be acknowledged, then leave them queued.
                    drain_deadline = drain_deadline or time.monotonic() + min(2.0, self.poll_seconds * 10)
                    if not state.in_flight or not self._connected or time.monotonic() >= drain_deadline:
                        return
                    continue
                self._send_more(state)
            except Exception as exc:
                # A locked or broken outbox file must not end the link: log (once per cause) and retry.
                cause = f"MQTT sender: {type(exc).__name__}: {exc}; retrying"
                if cause not in self._warned:
                    log.exception("%s", cause)
                self._warned.add(cause)
                time.sleep(min(1.0, self.poll_seconds * 5))

    def _watch_network_thread(self) -> None:
        # paho's loop thread only ends on disconnect(); if anything else ends it (an exception
        # paho does not handle), the link would stay down silently. Start it again instead.
        if self._client._thread is None and not self._stopping:
            log.error("MQTT network loop ended unexpectedly; restarting it")
            self._client.loop_start()

    def _process_acks(self, state: SenderState) -> None:
        done: list[int] = []
        while self._acks:
            epoch, mid, failed = self._acks.popleft()
            # Only acks of this connection match the map (the status message's mid never does);
            # a late one from an older connection is ignored: at worst its row is sent twice.
            seq = state.in_flight.pop(mid, None) if epoch == state.epoch else None
            if seq is None:
                continue
            retried = seq in state.retrying
            state.retrying.discard(seq)
            if failed:
                # The broker refused this message (v5 PUBACK reason, e.g. not authorised): keep the
                # row and publish it again later on this connection (an ACL may get fixed).
                self._counts["refused"] += 1
                state.refuse(seq, self.refused_retry_max_seconds)
                self._warn_once(
                    f"the broker refused a message ({failed}); it stays queued and is published again on this "
                    f"connection after {self.refused_retry_min_seconds:g} s, doubling up to "
                    f"{self.refused_retry_max_seconds:g} s while the broker keeps refusing"
                )
            else:
                if retried:
                    state.retry_delay = self.refused_retry_min_seconds  # the broker takes them again
                done.append(seq)
        if done:
            self._counts["acked"] += self.outbox.ack_many(done)
        self._in_flight = len(state.in_flight)

    def _send_more(self, state: SenderState) -> None:
        if not self._connected:
            return
        if state.epoch != self._epoch:
            state.new_connection(self._epoch)
        room = self._effective_window - len(state.in_flight)
        if room <= 0:
            return
        retry = state.retry_at is not None and time.monotonic() >= state.retry_at
        rows = state.refused_rows(self.outbox, room) if retry else self.outbox.pending(room, after=state.cursor)
        if not rows:
            return
        with self._lock:
            if state.epoch != self._epoch or not self._connected:
                return  # reconnected meanwhile: the next round starts over from the oldest row
            for row in rows:
                try:
                    info = self._client.publish(row.topic, row.payload, qos=row.qos)
                except ValueError as exc:
                    # A row paho can never send (bad topic, qos): it would block the queue forever.
                    self._warn_once(f"outbox message seq {row.seq} can never be sent ({exc}); deleted")
                    self.outbox.ack(row.seq)
                    self._counts["refused"] += 1
                    state.cursor = row.seq
                    continue
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    break  # the connection is going; the reconnect starts a new epoch
                state.in_flight[info.mid] = row.seq
                if retry:
                    state.refused.discard(row.seq)
                    state.retrying.add(row.seq)
                else:
                    state.cursor = row.seq
                self._counts["sent"] += 1
        self._in_flight = len(state.in_flight)
        if retry and not state.refused:
            state.retry_at = None  # every refused message is on its way again
        if len(rows) == room or retry:
            self._wake.set()  # there may be more: go again once acks make room

    # --- heartbeat thread ---------------------------------------------------------------------
    def _run_heartbeats(self) -> None:
        assert self.heartbeat_source is not None
        while not self._stop.wait(self.config.heartbeat_seconds):
            if not self._connected:
                continue
            try:
                self.publish_heartbeat(self.heartbeat_source())
            except Exception as exc:
                self._warn_once(f"heartbeat not sent: {type(exc).__name__}: {exc}")
