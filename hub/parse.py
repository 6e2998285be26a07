"""One MQTT message -> one `Record`: the validated contract message, or a rejection that says why.

Never raises for anything a sender can put on the wire: the topic is checked against the
contract's topic rule, the payload against the contract's strict models (contract/messages.py),
and whatever fails is a rejection with a cause the hub counts per device.
"""

from __future__ import annotations

import struct
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from contract import ContractError, Event, Heartbeat, Reply, Status, check_snapshot, decode, parse_topic
from contract.topics import NAME, TopicError, TopicInfo
from hub.records import Record, RecordKind

_MODELS: dict[str, tuple[RecordKind, type[Status | Heartbeat | Event | Reply]]] = {
    "status": ("status", Status),
    "heartbeat": ("heartbeat", Heartbeat),
    "event": ("event", Event),
    "reply": ("reply", Reply),
}
_MAX_TEXT = 200  # rejected topics and error texts are stored truncated: they come from untrusted senders
# Valid topics seen lately and what they say: a device sends on the same few topics all day.
# Bounded (emptied when full): a flood of invented device names must not grow it without end.
_TOPICS: dict[str, TopicInfo] = {}
_TOPICS_MAX = 10_000
_U16 = struct.Struct("!H")
_READ_BUFFER = 64 * 1024


class HubClient(mqtt.Client):
    """paho's client with a leaner PUBLISH decoder for QoS 0 and 1 (the hub subscribes at QoS 1).

    paho builds an MQTT v5 `Properties` object for every message it receives (its __init__ alone
    builds two tables of all property types), and logs every message at debug level: a fifth of
    the network thread's time in a burst. The hub reads no message property (it asks for no topic
    aliases, and needs no subscription identifiers), so this decoder skips them. Everything else
    (QoS 2, a packet this decoder finds malformed) goes to paho's own decoder.

    It also reads the socket 64 KiB at a time, not with a system call for a packet's first byte,
    one per byte of its length and one for its body, and handles every packet that has arrived
    before it returns to select(), not one per select()."""

    _rbuf = b""  # read from the socket, not yet handed to paho's packet reader
    _rpos = 0
    _rsock: object = None  # the socket _rbuf came from

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._sock is not self._rsock:  # a new connection: nothing buffered belongs to it
            self._rbuf, self._rpos, self._rsock = b"", 0, self._sock
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(_READ_BUFFER)  # BlockingIOError when nothing has arrived
            if len(data) <= bufsize:
                return data  # b"": the broker closed the connection
            self._rbuf, self._rpos = data, 0
        end = self._rpos + bufsize
        data = self._rbuf[self._rpos : end]
        self._rpos = end
        return data

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # Until the socket has nothing more: select() cannot see what waits in _rbuf. (paho reads
        # one packet per call when it has no messages of its own in flight.) Acknowledgements the
        # writer queued meanwhile go out at once: the broker sends more only for them.
        while True:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            if self._out_packet:
                self.loop_write()
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_publish(self) -> MQTTErrorCode:
        header = self._in_packet["command"]
        packet = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        v5 = self._protocol == mqtt.MQTTv5
        topic = b""
        try:
            (length,) = _U16.unpack_from(packet, 0)
            topic = bytes(packet[2 : 2 + length])
            pos = 2 + length
            mid = 0
            if qos:
                (mid,) = _U16.unpack_from(packet, pos)
                pos += 2
            if v5:  # property length (a variable byte integer), then the properties: skipped
                size, shift = 0, 0
                while True:
                    byte = packet[pos]
                    pos += 1
                    size |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise IndexError
                pos += size
        except (struct.error, IndexError):
            pos = -1
        if qos > 1 or pos < 0 or pos > len(packet) or (not topic and not v5):
            return super()._handle_publish()
        message = mqtt.MQTTMessage(mid, topic)
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.payload = packet[pos:]
        message.timestamp = time.monotonic()
        on_message = self._on_message
        if on_message is None or self._on_message_filtered._root._children:
            self._handle_on_message(message)  # callbacks per topic filter: paho's own dispatch
        else:
            # paho's dispatch first looks the topic up among the message_callback_add() filters
            # (4.5 us a message with none); the hub adds none: on_message gets every message.
            with self._in_callback_mutex:
                try:
                    on_message(self, self._userdata, message)
                except Exception as err:
                    self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                    if not self.suppress_exceptions:
                        raise
        # QoS 1: the hub acknowledges after the commit (manual_ack), so nothing is sent here.
        if qos == 1 and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def parse_message(
    topic: str | bytes, payload: bytes | bytearray, retained: bool, received: float, max_payload: int
) -> Record:
    """Turn one MQTT message into a Record: the validated message, or a rejection saying why not.
    Never raises for anything a sender can put on the wire."""
    try:
        text = topic.decode("utf-8") if isinstance(topic, bytes) else topic
    except UnicodeDecodeError:
        return rejection("?", "?", received, "topic", "topic is not UTF-8", repr(topic))
    info = _TOPICS.get(text)
    if info is None:
        try:
            info = parse_topic(text)
        except TopicError as exc:
            site, device = _names_from_topic(text)
            return rejection(site, device, received, "topic", str(exc), text)
        if len(_TOPICS) >= _TOPICS_MAX:
            _TOPICS.clear()
        _TOPICS[text] = info
    if info.kind == "snapshot":
        try:
            data = check_snapshot(bytes(payload))
        except ContractError as exc:
            return rejection(info.site, info.device, received, exc.cause, str(exc), text)
        return Record("snapshot", info.site, info.device, received, retained=retained, name=info.name, data=data)
    kind_model = _MODELS.get(info.kind)
    if kind_model is None:  # cmd/<name>: the hub's own direction; the hub never subscribes to it
        return rejection(info.site, info.device, received, "topic", f"the hub does not accept {info.kind}", text)
    if len(payload) > max_payload:
        message = f"payload of {len(payload)} bytes is over the hub's limit of {max_payload}"
        return rejection(info.site, info.device, received, "oversized", message, text)
    kind, model = kind_model
    try:
        decoded = decode(model, bytes(payload))
    except ContractError as exc:
        return rejection(info.site, info.device, received, exc.cause, str(exc), text)
    return Record(kind, info.site, info.device, received, message=decoded, retained=retained)


def rejection(site: str, device: str, received: float, cause: str, error: str, topic: str) -> Record:
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
