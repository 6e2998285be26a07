"""Typed values at the hub's people-facing boundaries: what services return, what the API sends.

One model per thing, from the database row to the JSON a phone gets: the routes declare these as
their response models, so the OpenAPI at /docs is the real shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.topics import NAME_PATTERN

Role = Literal["admin", "shop_owner", "police", "dorm_manager", "grid_worker"]
ROLES: tuple[Role, ...] = ("admin", "shop_owner", "police", "dorm_manager", "grid_worker")
ScopeKind = Literal["camera", "site", "building", "grid"]
Locale = Literal["zh", "en"]
# An incident's priority: with its category it sets the deadline (hub config `incidents`).
Priority = Literal["urgent", "high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "normal", "low")

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,62}$"
# A camera id names one camera of one box of one site: "site.device.camera". The three parts use
# the contract's name alphabet (no dot), so the id is URL-safe and splits back unambiguously.
CAMERA_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}\.[a-z0-9][a-z0-9_-]{0,62}\.[a-z0-9][a-z0-9_-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)
_CAMERA_ID = re.compile(CAMERA_ID_PATTERN)

Username = Annotated[str, Field(pattern=USERNAME_PATTERN, description="Lower-case letters, digits, . _ -")]
CameraId = Annotated[str, Field(pattern=CAMERA_ID_PATTERN, description="site.device.camera")]


def camera_id(site: str, device: str, camera: str) -> str:
    return f"{site}.{device}.{camera}"


def split_camera_id(value: str) -> tuple[str, str, str] | None:
    """(site, device, camera), or None when `value` is not a camera id."""
    if not _CAMERA_ID.match(value):
        return None
    site, device, camera = value.split(".")
    return site, device, camera


def is_site_name(value: str) -> bool:
    return _NAME.match(value) is not None


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class User(ApiModel):
    id: int
    username: str
    role: Role
    locale: Locale
    cameras: list[str] = Field(description="Camera ids a shop owner may see.")
    sites: list[str] = Field(description="Sites whose cameras a police user may see.")
    buildings: list[str] = Field(description="Buildings a dorm manager runs.")
    grids: list[str] = Field(description="Grids a grid worker serves.")
    created: float
    locked: bool = Field(description="Locked out after repeated failed logins until an admin unlocks it.")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user behind a session cookie, a bearer token or an API token."""

    user_id: int
    username: str
    role: Role
    locale: Locale
    cameras: frozenset[str] = field(default_factory=frozenset)
    sites: frozenset[str] = field(default_factory=frozenset)
    buildings: frozenset[str] = field(default_factory=frozenset)
    grids: frozenset[str] = field(default_factory=frozenset)
    credential: str = ""  # digest of the credential used
    via: Literal["session", "bearer", "api"] = "session"
    csrf: str | None = None  # browser sessions: the token state-changing requests must echo
    login: str | None = None

    def may_see_camera(self, site: str, device: str, camera: str | None) -> bool:
        """The one rule for video and alerts: admins see everything, police the sites of their
        jurisdiction, shop owners their own cameras, dorm managers the cameras at their buildings'
        doors (filled in at sign-in from gate_doors), everyone else nothing. An event without a
        camera (a disk full on the box) is the box's: admins and the site's police only."""
        if self.role == "admin":
            return True
        if self.role == "police":
            return site in self.sites
        if self.role in ("shop_owner", "dorm_manager") and camera is not None:
            return camera_id(site, device, camera) in self.cameras
        return False


class LoginRequest(ApiModel):
    username: str = Field(max_length=64, description="The account's user name.")
    password: str = Field(max_length=256, description="The account's password.")


class LoginResponse(ApiModel):
    token: str = Field(description="Bearer token for API clients (Authorization: Bearer ...); shown once.")
    expires: float = Field(description="When the session and the token expire, epoch seconds UTC.")
    user: User


class AlertRef(ApiModel):
    id: str
    time: float
    kind: str


class Camera(ApiModel):
    id: str = Field(description="site.device.camera; the id `users add --camera` takes.")
    site: str
    device: str
    name: str
    online: bool = Field(description="The box is online and says the camera is.")
    state: str | None = Field(description="The camera's state in the box's last heartbeat.")
    last_alert: AlertRef | None
    snapshot: str | None = Field(description="URL of the latest alert snapshot, if any.")


class CameraList(ApiModel):
    items: list[Camera]


class Alert(ApiModel):
    id: str
    camera: str | None = Field(description="Camera id, or null for an event of the box itself.")
    site: str
    device: str
    kind: str
    time: float
    end: float | None
    zone: str | None
    score: float | None
    persons: int | None
    test: bool
    snapshot: str | None = Field(description="URL of the snapshot, if the hub has one.")


class AlertPage(ApiModel):
    items: list[Alert]
    next: str | None = Field(description="Pass as `before` for the next (older) page; null at the end.")
    newest: str | None = Field(description="Pass as `after` to get only what arrived since (the live feed).")


class Device(ApiModel):
    site: str
    device: str
    state: str | None
    last_seen: float | None
    agent_version: str | None
    cameras: list[str]
    heartbeat_time: float | None
    cpu_percent: float | None
    memory_mb: float | None
    disk_free_bytes: int | None
    disk_total_bytes: int | None
    temperature_c: float | None
    outbox_depth: int | None
    outbox_dropped: int | None
    rejections: int


class DeviceList(ApiModel):
    items: list[Device]


class AuditEntry(ApiModel):
    id: int
    time: float
    actor: str
    role: str | None
    action: str
    target: str | None
    address: str | None
    detail: str


class AuditPage(ApiModel):
    items: list[AuditEntry]
    next: int | None


class UserCreate(ApiModel):
    username: Username
    password: str = Field(min_length=10, max_length=256, description="At least 10 characters.")
    role: Role
    cameras: list[CameraId] = Field(default_factory=list)
    sites: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(default_factory=list)
    buildings: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = Field(
        default_factory=list, description="Buildings a dorm manager runs."
    )
    locale: Locale = "zh"


class UserList(ApiModel):
    items: list[User]


class ApiTokenCreate(ApiModel):
    name: str = Field(min_length=1, max_length=64, description="What the token is for, e.g. the police system.")
    days: int = Field(90, ge=1, le=366, description="Days until it expires.")


class ApiTokenCreated(ApiModel):
    token: str = Field(description="Shown once; the hub keeps only its SHA-256.")
    name: str
    expires: float


CardState = Literal["active", "suspended", "lost", "returned", "revoked"]
CardFormat = Literal["wiegand26", "wiegand34", "number"]
BuildingName = Annotated[str, Field(pattern=NAME_PATTERN, description="A building id, e.g. b07.")]


class Card(ApiModel):
    id: int
    format: CardFormat = Field(description="wiegand26, wiegand34, or number (a UID a keyboard-wedge reader types).")
    number: str = Field(description="As printed: FACILITY/NUMBER for Wiegand cards, the digits otherwise.")
    state: CardState
    valid_from: float | None = Field(description="Valid from, epoch seconds UTC; null: at once.")
    valid_until: float | None = Field(description="Valid until, epoch seconds UTC; null: no end.")
    max_uses: int | None = Field(description="A visitor pass's number of entries; null: no limit.")
    issued: float
    changed: float


class Resident(ApiModel):
    employee_no: str
    name: str
    company: str
    building: str
    room: str
    phone: str
    kind: Literal["resident", "visitor"]
    cards: list[Card]


class ResidentList(ApiModel):
    items: list[Resident]


class CardIssue(ApiModel):
    """A card for a resident (added or updated by employee number) or a visitor pass."""

    employee_no: str = Field(min_length=1, max_length=100, description="The resident's employee number.")
    name: str = Field(min_length=1, max_length=100, description="Name as on the resident's ID.")
    company: str = Field("", max_length=100, description="Employer.")
    building: BuildingName
    room: str = Field("", max_length=100, description="Room number.")
    phone: str = Field("", max_length=100, description="Contact phone.")
    kind: Literal["resident", "visitor"] = Field("resident", description="visitor: a pass that expires.")
    card_number: str = Field(min_length=1, max_length=100, description="FACILITY/NUMBER or the digits.")
    card_format: str = Field(min_length=1, max_length=20, description="wiegand26, wiegand34, number or uid.")
    valid_until: float | None = Field(None, description="Epoch seconds UTC; a visitor pass needs one.")
    max_uses: int | None = Field(None, ge=1, le=1000, description="Entries a visitor pass allows.")


class CardReplace(ApiModel):
    """A lost card's replacement: the old card is marked lost and stops working at once."""

    card_number: str = Field(min_length=1, max_length=100, description="The new card: FACILITY/NUMBER or digits.")
    card_format: str = Field(min_length=1, max_length=20, description="wiegand26, wiegand34, number or uid.")


class CardStateChange(ApiModel):
    state: Literal["active", "suspended", "returned", "revoked"] = Field(
        description="suspended: stops working until set active again; returned, revoked: for good."
    )


class ImportReport(ApiModel):
    residents: int = Field(description="Residents added or updated.")
    cards: int = Field(description="Cards added or updated.")


class GateListState(ApiModel):
    """A gate box's allow-list: the version it should hold, and the one it says it holds."""

    site: str
    device: str
    buildings: list[str] = Field(description="Buildings whose doors the box opens.")
    online: bool
    latest_version: int = Field(description="The newest change to the lists of its buildings.")
    sent_version: int | None = Field(description="The version last sent to the box.")
    reported_version: int | None = Field(description="The version in the box's last heartbeat.")
    stale: bool = Field(description="The box reports an older list than the hub's, or none.")
    behind: int = Field(0, description="Changes to its buildings' lists the box does not hold yet (0: current).")
    stale_since: float | None = Field(
        None, description="When the oldest change the box lacks was made (epoch seconds): out of date since then."
    )


class GateListStates(ApiModel):
    items: list[GateListState]


class AccessRecord(ApiModel):
    """One line of the access log: a gate's decision or a door alarm."""

    id: str
    time: float
    site: str
    device: str
    door: str | None
    building: str | None
    kind: Literal["access", "door_alarm"]
    granted: bool | None = Field(description="access: whether the door opened.")
    reason: str | None = Field(description="access: granted, revoked, wrong_building, bad_read, ...")
    alarm: str | None = Field(description="door_alarm: forced_open, held_open, repeated_denials or tailgating.")
    card: str | None
    employee_no: str | None
    name: str | None
    why: str | None
    camera: str | None = Field(None, description="The camera at the door (site.device.camera), if it has one.")
    snapshot: str | None = Field(
        None, description="URL of the door camera's picture of that moment, if the hub has it."
    )
    playback: str | None = Field(
        None, description="Playback page a few seconds before the moment; only for callers who may watch the camera."
    )


class AccessLog(ApiModel):
    items: list[AccessRecord]
