"""Message payloads: JSON objects validated by pydantic models.

Every message carries `v` (the payload version). Receivers reject what they cannot read with a
`ContractError` that names the cause (too large, not JSON, wrong version, which field is
wrong), so the hub can count rejections per device and cause. Unknown fields are rejected too:
a sender and receiver that disagree on the contract should fail loudly in testing, not drop
data silently in a village.

The contract is strict because one device's message must never be able to stop the hub for
every other device: whatever passes `decode` can be written to SQLite and read back by every
reader. So types are not coerced (`"0"` is not a seq, `"yes"` is not a bool), numbers are
finite, times lie in a sane window (a time SQLite or `datetime` cannot hold would break every
reader later), integers fit SQLite's 64 bits, strings are valid Unicode (a lone surrogate cannot
be encoded for SQLite), ids are real ULIDs (128 bits), and free-form objects (`detail`, `args`,
`result`) are bounded in depth.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json

from contract.topics import EVENT_ID_PATTERN, NAME_PATTERN

PROTOCOL_VERSION = 1
MAX_PAYLOAD_BYTES = 64 * 1024  # an event stays small: snapshots travel separately
EVENT_ID = EVENT_ID_PATTERN
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
# Times a message may carry: 2000-01-01 to 2100-01-01 UTC. A box whose clock says 1970 (no RTC,
# no NTP yet) is refused rather than stored with a date every reader would have to explain.
TIME_MIN = 946_684_800.0
TIME_MAX = 4_102_444_800.0
INT64_MAX = 2**63 - 1  # SQLite's integers
MAX_JSON_DEPTH = 16  # nesting of free-form objects; a person event's detail needs 3


def _valid_text(value: str) -> str:
    """A str that UTF-8 can encode: JSON's escapes can smuggle in a lone surrogate, which Python
    holds happily and SQLite refuses to store."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode (lone surrogate)") from None
    return value


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("has a key that is not a string")
            _valid_text(key)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, str):
        _valid_text(value)
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise ValueError("holds an integer outside 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("holds a number that is not finite")
    else:
        raise ValueError(f"holds a {type(value).__name__}, which is not JSON")


def _valid_json_object(value: dict[str, Any]) -> dict[str, Any]:
    _check_json(value)
    return value


Text = Annotated[str, AfterValidator(_valid_text)]
EpochSeconds = Annotated[float, Field(ge=TIME_MIN, le=TIME_MAX)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_valid_json_object)]


class ContractError(ValueError):
    """A payload that does not follow the contract; `cause` is a short stable key for counting."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    v: Literal[1] = Field(1, description="Payload version; a receiver rejects others.")


class Status(Message):
    """Retained on .../status. The broker publishes the last will (state offline) if the agent
    vanishes; a clean shutdown publishes offline itself."""

    state: Literal["online", "offline"]
    time: EpochSeconds = Field(description="Sender's clock, epoch seconds UTC.")
    agent_version: Text | None = Field(None, max_length=100)
    cameras: list[Name] = Field(default_factory=list)
    clean: bool = Field(True, description="false on the last will: the agent did not say goodbye.")


class CameraHealth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    camera: Name
    state: Literal["starting", "online", "offline", "error", "stopped"]
    fps: float = Field(ge=0)
    dropped_packets: int = Field(ge=0, le=INT64_MAX)
    recording: bool
    last_segment_end: EpochSeconds | None = Field(None, description="End of the newest recorded segment.")
    recorded_from: EpochSeconds | None = Field(
        None,
        description="Start of the oldest recording the box still keeps of this camera (the ring buffer's "
        "far end, segments on legal hold included): the hub refuses a clip that ends before it.",
    )
    last_error: Text | None = Field(None, max_length=500)


class Heartbeat(Message):
    """QoS 0 on .../heartbeat every `heartbeat_seconds`; a lost one is replaced by the next."""

    time: EpochSeconds
    uptime_seconds: float = Field(ge=0)
    cpu_percent: float | None = Field(None, ge=0)
    memory_mb: float | None = Field(None, ge=0)
    disk_free_bytes: int | None = Field(None, ge=0, le=INT64_MAX)
    disk_total_bytes: int | None = Field(None, ge=0, le=INT64_MAX)
    temperature_c: float | None = None
    outbox_depth: int = Field(0, ge=0, le=INT64_MAX)
    outbox_dropped: int = Field(0, ge=0, le=INT64_MAX)
    cameras: list[CameraHealth] = Field(default_factory=list)
    access_list_version: int | None = Field(
        None,
        ge=0,
        le=INT64_MAX,
        description="A gate box: the version of the allow-list it decides on (0: none yet). Absent on a "
        "camera box and on boxes older than the field.",
    )


class SnapshotRef(BaseModel):
    """The snapshot files on the agent; the JPEG itself follows on .../snapshot/<event id>."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Text = Field(max_length=300, description="Relative to the agent's storage root.")
    crop: Text | None = Field(None, max_length=300)


# access: a gate's decision; door_alarm: forced or held open, repeated denials, tailgating
# (detail.alarm); door: a door's contact opened or closed (detail: door, building, open), from
# which the hub's door board knows each door's state; access_list_rejected: a list from the hub
# that failed its signature or version checks.
EventKind = Literal[
    "person",
    "camera_offline",
    "camera_back",
    "disk_full",
    "test",
    "access",
    "door_alarm",
    "door",
    "access_list_rejected",
]
Phase = Literal["new", "update", "end", "instant"]


class Event(Message):
    """QoS 1 on .../event. The same `id` arrives with phase new, then updates, then end (person
    events), or once with phase instant; the hub stores by (id, phase, seq) so a redelivery is
    stored once."""

    id: str = Field(pattern=EVENT_ID, description="Time-ordered unique id (ULID).")
    seq: int = Field(0, ge=0, le=INT64_MAX, description="Order of this message within the event (new = 0).")
    kind: EventKind
    phase: Phase
    camera: Name | None = None
    time: EpochSeconds = Field(description="When the event started, epoch seconds UTC.")
    end: EpochSeconds | None = None
    test: bool = Field(False, description="Sent by `diaolou-agent test-alarm`: proves the path, alerts no one.")
    detail: JsonObject = Field(default_factory=dict)
    snapshot: SnapshotRef | None = None


class Command(Message):
    """QoS 1 on .../cmd/<name>; the agent answers on .../reply with the same id."""

    id: Text = Field(min_length=1, max_length=64, description="Correlation id chosen by the hub.")
    time: EpochSeconds
    expires: EpochSeconds | None = Field(None, description="Ignore the command after this time.")
    args: JsonObject = Field(default_factory=dict)


class Reply(Message):
    id: Text = Field(min_length=1, max_length=64)
    ok: bool
    time: EpochSeconds
    result: JsonObject = Field(default_factory=dict)
    error: Text | None = Field(None, max_length=2000)


M = TypeVar("M", bound=Message)


def encode(message: Message) -> bytes:
    data = message.model_dump_json(exclude_none=False).encode("utf-8")
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"{type(message).__name__} of {len(data)} bytes is over the limit")
    return data


def decode(model: type[M], payload: bytes) -> M:
    """The message in `payload`, or ContractError. Never raises anything else for any bytes."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"payload of {len(payload)} bytes is over {MAX_PAYLOAD_BYTES}")
    try:
        # pydantic's parser (not json.loads): it refuses invalid UTF-8, lone surrogates, NaN and
        # Infinity, nesting past its recursion limit and integers too long to convert, each as a
        # ValueError, where json.loads would accept some and raise RecursionError on others.
        raw = from_json(payload, allow_inf_nan=False)
    except ValueError as exc:
        # The parser's words for a lone surrogate (valid JSON syntax, invalid Unicode) say little.
        hint = " (a \\u escape cut short, or a lone surrogate: not valid Unicode)" if "hex escape" in str(exc) else ""
        raise ContractError("malformed", f"not JSON: {exc}{hint}") from None
    if not isinstance(raw, dict):
        raise ContractError("malformed", "payload is not a JSON object")
    if raw.get("v") != PROTOCOL_VERSION or type(raw.get("v")) is not int:
        raise ContractError("version", f"payload version {raw.get('v')!r:.20}, expected {PROTOCOL_VERSION}")
    try:
        return model.model_validate(raw, strict=True)
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
