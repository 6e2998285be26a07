"""Message payloads: JSON objects validated by pydantic models.

Every message carries `v` (the payload version). Receivers reject what they cannot read with a
`ContractError` that names the cause (too large, not JSON, wrong version, which field is
wrong), so the hub can count rejections per device and cause. Unknown fields are rejected too:
a sender and receiver that disagree on the contract should fail loudly in testing, not drop
data silently in a village.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

PROTOCOL_VERSION = 1
MAX_PAYLOAD_BYTES = 64 * 1024  # an event stays small: snapshots travel separately
EVENT_ID = r"^[0-9A-HJKMNP-TV-Z]{26}$"  # ULID: sortable by time, unique (edge_agent.events.ids)
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class ContractError(ValueError):
    """A payload that does not follow the contract; `cause` is a short stable key for counting."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = Field(1, description="Payload version; a receiver rejects others.")


class Status(Message):
    """Retained on .../status. The broker publishes the last will (state offline) if the agent
    vanishes; a clean shutdown publishes offline itself."""

    state: Literal["online", "offline"]
    time: float = Field(description="Sender's clock, epoch seconds UTC.")
    agent_version: str | None = None
    cameras: list[Name] = Field(default_factory=list)
    clean: bool = Field(True, description="false on the last will: the agent did not say goodbye.")


class CameraHealth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    camera: Name
    state: Literal["starting", "online", "offline", "error", "stopped"]
    fps: float = Field(ge=0)
    dropped_packets: int = Field(ge=0)
    recording: bool
    last_segment_end: float | None = None
    last_error: str | None = Field(None, max_length=500)


class Heartbeat(Message):
    """QoS 0 on .../heartbeat every `heartbeat_seconds`; a lost one is replaced by the next."""

    time: float
    uptime_seconds: float = Field(ge=0)
    cpu_percent: float | None = Field(None, ge=0)
    memory_mb: float | None = Field(None, ge=0)
    disk_free_bytes: int | None = Field(None, ge=0)
    disk_total_bytes: int | None = Field(None, ge=0)
    temperature_c: float | None = None
    outbox_depth: int = Field(0, ge=0)
    outbox_dropped: int = Field(0, ge=0)
    cameras: list[CameraHealth] = Field(default_factory=list)


class SnapshotRef(BaseModel):
    """The snapshot files on the agent; the JPEG itself follows on .../snapshot/<event id>."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(max_length=300, description="Relative to the agent's storage root.")
    crop: str | None = Field(None, max_length=300)


EventKind = Literal["person", "camera_offline", "camera_back", "disk_full", "test"]
Phase = Literal["new", "update", "end", "instant"]


class Event(Message):
    """QoS 1 on .../event. The same `id` arrives with phase new, then updates, then end (person
    events), or once with phase instant; the hub stores by (id, phase, seq) so a redelivery is
    stored once."""

    id: str = Field(pattern=EVENT_ID, description="Time-ordered unique id (ULID).")
    seq: int = Field(0, ge=0, description="Order of this message within the event (new = 0).")
    kind: EventKind
    phase: Phase
    camera: Name | None = None
    time: float = Field(description="When the event started, epoch seconds UTC.")
    end: float | None = None
    test: bool = Field(False, description="Sent by `diaolou-agent test-alarm`: proves the path, alerts no one.")
    detail: dict[str, Any] = Field(default_factory=dict)
    snapshot: SnapshotRef | None = None


class Command(Message):
    """QoS 1 on .../cmd/<name>; the agent answers on .../reply with the same id."""

    id: str = Field(min_length=1, max_length=64, description="Correlation id chosen by the hub.")
    time: float
    expires: float | None = Field(None, description="Ignore the command after this time.")
    args: dict[str, Any] = Field(default_factory=dict)


class Reply(Message):
    id: str = Field(min_length=1, max_length=64)
    ok: bool
    time: float
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = Field(None, max_length=2000)


M = TypeVar("M", bound=Message)


def encode(message: Message) -> bytes:
    data = message.model_dump_json(exclude_none=False).encode("utf-8")
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"{type(message).__name__} of {len(data)} bytes is over the limit")
    return data


def decode(model: type[M], payload: bytes) -> M:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError("malformed", f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ContractError("malformed", "payload is not a JSON object")
    if raw.get("v") != PROTOCOL_VERSION:
        raise ContractError("version", f"payload version {raw.get('v')!r}, expected {PROTOCOL_VERSION}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<payload>"
        raise ContractError("invalid", f"{model.__name__}.{where}: {first['msg']}") from None


JPEG_MAGIC = b"\xff\xd8\xff"


def check_snapshot(payload: bytes) -> bytes:
    """A snapshot payload is a JPEG of at most MAX_PAYLOAD_BYTES; ContractError otherwise."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"snapshot of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    if not payload.startswith(JPEG_MAGIC) or not payload.endswith(b"\xff\xd9"):
        raise ContractError("invalid", "snapshot is not a complete JPEG")
    return payload


def is_event_id(value: str) -> bool:
    return re.match(EVENT_ID, value) is not None
