"""One MQTT message -> one `Record`: the validated contract message, or a rejection that says why.

Never raises for anything a sender can put on the wire: the topic is checked against the
contract's topic rule, the payload against the contract's strict models (contract/messages.py),
and whatever fails is a rejection with a cause the hub counts per device.
"""

from __future__ import annotations

from contract import ContractError, Event, Heartbeat, Reply, Status, check_snapshot, decode, parse_topic
from contract.topics import NAME, TopicError
from hub.records import Record, RecordKind

_MODELS: dict[str, tuple[RecordKind, type[Status | Heartbeat | Event | Reply]]] = {
    "status": ("status", Status),
    "heartbeat": ("heartbeat", Heartbeat),
    "event": ("event", Event),
    "reply": ("reply", Reply),
}
_MAX_TEXT = 200  # rejected topics and error texts are stored truncated: they come from untrusted senders


def parse_message(
    topic: str | bytes, payload: bytes | bytearray, retained: bool, received: float, max_payload: int
) -> Record:
    """Turn one MQTT message into a Record: the validated message, or a rejection saying why not.
    Never raises for anything a sender can put on the wire."""
    try:
        text = topic.decode("utf-8") if isinstance(topic, bytes) else topic
    except UnicodeDecodeError:
        return rejection("?", "?", received, "topic", "topic is not UTF-8", repr(topic))
    try:
        info = parse_topic(text)
    except TopicError as exc:
        site, device = _names_from_topic(text)
        return rejection(site, device, received, "topic", str(exc), text)
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
