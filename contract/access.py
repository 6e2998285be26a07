"""Allow-lists from the hub to a gate box: signed, versioned, chunked, on .../acl (QoS 1).

A list is a snapshot (every card of the box's buildings) or a delta (the cards that changed since
`base`). Its body is an `AccessBody` (the entries, and the groups and schedules whole: they are
few) as JSON compressed with zlib; a body larger than one
MQTT payload travels in `parts` consecutive `AccessListPart` messages that each repeat the header
and carry a slice of the body (base64). The gate applies a list only when every part has arrived,
the SHA-256 of the body is `digest`, and `signature` (Ed25519 by the hub's list key) verifies over
`signed_bytes(...)`: the site and device (a list made for one gate cannot be replayed to another),
kind, version, base, issue time, part count and digest. Then the version sequence: a snapshot must
be newer than what the gate holds, a delta must start at or before it and end after it (a delta
holds each changed card's state, so it applies to any list from its base on); anything else is a
replay or a gap and is refused (and reported as an `access_list_rejected` event).

10,000 cards make ~350 kB of JSON and ~100 kB compressed: three parts.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contract.messages import INT64_MAX, MAX_PAYLOAD_BYTES, ContractError, EpochSeconds, Message, Name, Text

# Body bytes per part: base64 makes 4 of every 3, and the header needs well under 1 kB.
PART_BODY_BYTES = (MAX_PAYLOAD_BYTES - 2048) // 4 * 3
MAX_PARTS = 200  # ~9 MB compressed: far beyond a village (3,800 residents take ~40 kB)
MAX_BODY_BYTES = 64 * 1024 * 1024  # decompressed: stops a zip bomb, holds ~1.5 million cards
SIGNATURE_DOMAIN = b"diaolou access list v1"

CardState = Literal["active", "suspended", "lost", "returned", "revoked", "removed"]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class AccessEntry(BaseModel):
    """One card as the gate needs it: no phone, no company (the gate does not need them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    format: Literal["wiegand26", "wiegand34", "number"] = Field(description="How the reader delivers the card.")
    bits: int = Field(ge=0, le=64, description="Wiegand bit length; 0 for a typed number.")
    facility: int = Field(ge=-1, le=65535, description="Wiegand facility code; -1 for a typed number.")
    number: int = Field(ge=0, le=10**18, description="Card number.")
    raw: Text = Field(max_length=100, description="As printed: FACILITY/NUMBER or the digits.")
    state: CardState = Field(description="removed: no longer on this gate's list (another building, gone).")
    employee_no: Text = Field(max_length=100, description="The holder's employee number.")
    name: Text = Field(max_length=100, description="The holder's name, for the access log and `decide`.")
    building: Name = Field(description="The holder's building: the doors they may open.")
    room: Text = Field("", max_length=100, description="The holder's room.")
    kind: Literal["resident", "visitor"] = Field("resident", description="A visitor pass expires.")
    valid_from: EpochSeconds | None = Field(None, description="Valid from (epoch seconds UTC).")
    valid_until: EpochSeconds | None = Field(None, description="Valid until (epoch seconds UTC).")
    max_uses: int | None = Field(None, ge=1, le=INT64_MAX, description="Entries a visitor pass allows.")
    groups: list[Name] = Field(default_factory=list, max_length=50, description="The holder's groups on this gate.")


class AccessSchedule(BaseModel):
    """A weekly schedule: segments of [weekday 0=Monday, start minute, end minute) in site time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = Field(description="Schedule id.")
    segments: list[
        tuple[
            Annotated[int, Field(ge=0, le=6)],
            Annotated[int, Field(ge=0, le=1439)],
            Annotated[int, Field(ge=1, le=1440)],
        ]
    ] = Field(max_length=100, description="[weekday, start minute, end minute] each.")
    closed_on_holidays: bool = Field(True, description="Closed on the gate's holidays.")


class AccessGroup(BaseModel):
    """A group granting its members other buildings, at any time or on a schedule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = Field(description="Group id.")
    buildings: list[Name] = Field(max_length=100, description="Buildings the group grants.")
    schedule: Name | None = Field(None, description="When; null: at any time.")


class AccessHoliday(BaseModel):
    """A day on which schedules closed on holidays do not open (residents' own buildings do)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD, site time.")
    name: Text = Field("", max_length=100, description="What the day is, for the refusal's words.")


class AccessBody(BaseModel):
    """What a list's parts carry once joined and inflated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entries: list[AccessEntry] = Field(description="Cards: every card (snapshot) or the changed ones (delta).")
    groups: list[AccessGroup] = Field(default_factory=list, max_length=1000, description="All groups, whole.")
    schedules: list[AccessSchedule] = Field(default_factory=list, max_length=1000, description="All schedules.")
    holidays: list[AccessHoliday] = Field(default_factory=list, max_length=1000, description="The calendar, whole.")


class AccessListPart(Message):
    """One part of a signed allow-list, hub -> gate on .../acl (QoS 1)."""

    site: Name = Field(description="The gate's site: bound into the signature.")
    device: Name = Field(description="The gate box: bound into the signature.")
    kind: Literal["snapshot", "delta"] = Field(description="snapshot: the whole list; delta: changes since base.")
    version: int = Field(ge=1, le=INT64_MAX, description="The gate's list version once applied.")
    base: int = Field(ge=0, le=INT64_MAX, description="delta: the version it applies to; snapshot: 0.")
    issued: EpochSeconds = Field(description="When the hub made the list.")
    part: int = Field(ge=0, lt=MAX_PARTS, description="This part's index, from 0.")
    parts: int = Field(ge=1, le=MAX_PARTS, description="How many parts make the body.")
    digest: Sha256Hex = Field(description="SHA-256 (hex) of the whole compressed body.")
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$", description="Which hub key signed (first 16 hex of its SHA-256).")
    signature: str = Field(pattern=r"^[A-Za-z0-9+/]{86}==$", description="Ed25519 signature (base64).")
    data: str = Field(max_length=MAX_PAYLOAD_BYTES, description="This part's slice of the body (base64).")


def signed_bytes(
    site: str, device: str, kind: str, version: int, base: int, issued: float, parts: int, digest: str
) -> bytes:
    """What the hub signs and the gate verifies: every header field that gives the list meaning."""
    return b"\n".join(
        [SIGNATURE_DOMAIN, *(str(x).encode() for x in (site, device, kind, version, base, repr(issued), parts, digest))]
    )


def header_bytes(part: AccessListPart) -> bytes:
    return signed_bytes(
        part.site, part.device, part.kind, part.version, part.base, part.issued, part.parts, part.digest
    )


def pack_body(body: AccessBody) -> bytes:
    """The body as JSON, zlib-compressed."""
    return zlib.compress(body.model_dump_json().encode("utf-8"), 6)


def unpack_body(body: bytes) -> AccessBody:
    """The body, or ContractError (not zlib, too large once inflated, not the schema)."""
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(body, MAX_BODY_BYTES)
    except zlib.error as exc:
        raise ContractError("malformed", f"access list body is not zlib data: {exc}") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise ContractError("oversized", f"access list body inflates past {MAX_BODY_BYTES} bytes or is cut short")
    try:
        return AccessBody.model_validate_json(data, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ContractError("invalid", f"access list entry {where}: {first['msg']}") from None


def split_body(body: bytes) -> list[str]:
    """The body cut into base64 slices, one per part."""
    slices = [body[i : i + PART_BODY_BYTES] for i in range(0, len(body), PART_BODY_BYTES)] or [b""]
    if len(slices) > MAX_PARTS:
        raise ContractError("oversized", f"access list of {len(body)} bytes needs more than {MAX_PARTS} parts")
    return [base64.b64encode(s).decode("ascii") for s in slices]


def digest_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
