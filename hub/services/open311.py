"""Open311 GeoReport v2 (https://wiki.open311.org/GeoReport_v2) over the incident registry.

Services are the incident categories; a service request is an incident. `status` is the spec's
open/closed: closed once the incident is closed or rejected, open before. Requests posted here
go through triage like any other source (hub/services/intake.py: its rules, kind `open311`, and
its dedup window by place: a second report of the same place joins the open request) and enter
the registry as 'reported' incidents (source open311) for the centre to accept or reject.

Least privilege: the service list is public, as the spec expects; requests describe people's
shops and doors, so reading them, like posting, takes an API key (`diaolou-hub open311 key`).
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from hub.security import new_token, token_digest
from hub.services import audit, incidents, intake
from hub.store import transaction

MAX_REQUESTS = 1000  # the spec's suggested cap on one answer
DEFAULT_DAYS = 90  # without start_date/end_date: the last 90 days, as the spec says


class Open311Error(Exception):
    """Answered as the spec's error list: [{"code": status, "description": reason}]."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Service(_Model):
    service_code: str = Field(description="Unique id of the service (the incident category).")
    service_name: str = Field(description="Human-readable name.")
    description: str = Field(description="What it is for.")
    metadata: bool = Field(description="Whether services/{code}.json has attributes (always false here).")
    type: str = Field(description="realtime: the request id is returned at once.")
    keywords: str = Field(description="Comma-separated keywords.")
    group: str = Field(description="Category group.")


class ServiceDefinition(_Model):
    service_code: str = Field(description="The service.")
    attributes: list[dict[str, str]] = Field(description="Extra fields a request may carry (none here).")


class ServiceRequest(_Model):
    service_request_id: str = Field(description="The incident number.")
    status: str = Field(description="open or closed.")
    status_notes: str | None = Field(description="The last note of the incident's history.")
    service_name: str = Field(description="Name of the service.")
    service_code: str = Field(description="The service (incident category).")
    description: str | None = Field(description="What was reported.")
    agency_responsible: str | None = Field(description="The grid responsible.")
    service_notice: str | None = Field(description="What to expect.")
    requested_datetime: str = Field(description="ISO 8601 with time zone.")
    updated_datetime: str = Field(description="ISO 8601 with time zone.")
    expected_datetime: str | None = Field(description="The deadline, once dispatched.")
    address: str | None = Field(description="Where: the camera or box, if any.")
    address_id: str | None = Field(description="Not used.")
    zipcode: str | None = Field(description="Not used.")
    lat: float | None = Field(description="WGS84 latitude.")
    long: float | None = Field(description="WGS84 longitude.")
    media_url: str | None = Field(description="Not used.")


class Created(_Model):
    service_request_id: str = Field(description="The new incident's number.")
    service_notice: str | None = Field(description="What to expect.")
    account_id: str | None = Field(description="Not used.")


# The catalogue: (code, name, description, group). The codes are the categories triage rules use.
SERVICES: list[tuple[str, str, str, str]] = [
    ("intrusion", "非法闯入 Intrusion", "Someone where no one should be (a closed shop at night).", "security"),
    ("forced_door", "强行开门 Forced door", "A door forced or held open.", "security"),
    ("tailgating", "尾随进入 Tailgating", "Someone following a resident through a gate.", "security"),
    ("camera_offline", "摄像头离线 Camera offline", "A camera offline for more than an hour.", "equipment"),
    ("public_report", "群众上报 Public report", "Anything else residents report.", "public"),
]
_NAMES = {code: name for code, name, _, _ in SERVICES}
NOTICE = "The grid centre reviews each report; an accepted one is dispatched to the grid worker."


def services() -> list[Service]:
    return [
        Service(service_code=c, service_name=n, description=d, metadata=False, type="realtime", keywords=g, group=g)
        for c, n, d, g in SERVICES
    ]


def definition(code: str) -> ServiceDefinition:
    if code not in _NAMES:
        raise Open311Error(404, f"no service {code[:40]!r}")
    return ServiceDefinition(service_code=code, attributes=[])


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(text: str, name: str) -> float:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name}: not an ISO 8601 date/time") from None
    if value.tzinfo is None:
        raise Open311Error(400, f"{name}: give a time zone (Z or +HH:MM), as the spec requires")
    return value.timestamp()


# --- keys ------------------------------------------------------------------------------------------
def issue_key(conn: sqlite3.Connection, actor: audit.Actor, name: str) -> str:
    if not name.strip() or len(name) > 64:
        raise Open311Error(400, "a key's name is 1 to 64 characters")
    key = new_token("o311_")
    with transaction(conn):
        if conn.execute("SELECT 1 FROM open311_keys WHERE name = ?", (name,)).fetchone():
            raise Open311Error(409, f"a key named {name!r} exists already")
        conn.execute("INSERT INTO open311_keys VALUES (?, ?, ?, NULL)", (token_digest(key), name, time.time()))
        audit.record(conn, actor, "open311.key", name)
    return key


def key_name(conn: sqlite3.Connection, key: str | None) -> str:
    """The name of a valid key; 403 (the spec's answer to a bad api_key) otherwise."""
    if not key:
        raise Open311Error(403, "api_key is required")
    row = conn.execute(
        "SELECT name FROM open311_keys WHERE digest = ? AND revoked IS NULL", (token_digest(key),)
    ).fetchone()
    if row is None:
        raise Open311Error(403, "invalid api_key")
    return str(row[0])


# --- requests --------------------------------------------------------------------------------------
def _request(conn: sqlite3.Connection, item: incidents.Incident) -> ServiceRequest:
    note = conn.execute(
        "SELECT note FROM incident_events WHERE incident_id = ? AND note != '' ORDER BY id DESC LIMIT 1", (item.id,)
    ).fetchone()
    where = ".".join(p for p in (item.site, item.device, item.camera) if p) or None
    return ServiceRequest(
        service_request_id=str(item.id),
        status="closed" if item.status in incidents.FINAL else "open",
        status_notes=note[0] if note else None,
        service_name=_NAMES.get(item.category, item.category),
        service_code=item.category,
        description=item.description or item.title,
        agency_responsible=item.grid,
        service_notice=NOTICE,
        requested_datetime=iso(item.created) or "",
        updated_datetime=iso(item.updated) or "",
        expected_datetime=iso(item.due),
        address=where,
        address_id=None,
        zipcode=None,
        lat=item.lat,
        long=item.lon,
        media_url=None,
    )


def get_requests(
    conn: sqlite3.Connection,
    ids: str | None,
    service_code: str | None,
    start_date: str | None,
    end_date: str | None,
    status: str | None,
    now: float | None = None,
) -> list[ServiceRequest]:
    """GET requests.json: service_request_id (comma list; the other filters are then ignored, as the
    spec says), service_code and status (comma lists), start_date/end_date (default: 90 days)."""
    if ids:
        wanted = [i.strip() for i in ids.split(",") if i.strip()]
        if not all(i.isdigit() for i in wanted):
            raise Open311Error(400, "service_request_id: comma-separated request ids")
        found = []
        for i in wanted[:MAX_REQUESTS]:
            try:
                found.append(incidents.get(conn, None, int(i)).incident)
            except incidents.IncidentError:
                continue
        return [_request(conn, item) for item in found]
    now = time.time() if now is None else now
    end = parse_time(end_date, "end_date") if end_date else now
    start = parse_time(start_date, "start_date") if start_date else end - DEFAULT_DAYS * 86400
    codes = {c.strip() for c in service_code.split(",")} if service_code else None
    states = {s.strip() for s in status.split(",")} if status else None
    if states is not None and not states <= {"open", "closed"}:
        raise Open311Error(400, "status: open, closed or both (comma-separated)")
    final = ",".join(repr(s) for s in sorted(incidents.FINAL))
    where, params = ["created >= ?", "created <= ?"], [start, end]
    if codes is not None:
        where.append(f"category IN ({','.join('?' * len(codes))})")
        params.extend(sorted(codes))  # type: ignore[arg-type]
    if states == {"open"}:
        where.append(f"status NOT IN ({final})")
    elif states == {"closed"}:
        where.append(f"status IN ({final})")
    rows = conn.execute(
        f"SELECT id FROM incidents WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", [*params, MAX_REQUESTS]
    ).fetchall()
    return [_request(conn, incidents.get(conn, None, r[0]).incident) for r in rows]


def get_request(conn: sqlite3.Connection, request_id: str) -> ServiceRequest:
    if not request_id.isdigit():
        raise Open311Error(404, f"no service request {request_id[:40]!r}")
    try:
        return _request(conn, incidents.get(conn, None, int(request_id)).incident)
    except incidents.IncidentError:
        raise Open311Error(404, f"no service request {request_id}") from None


def _float(form: dict[str, str], name: str, low: float, high: float) -> float | None:
    if not form.get(name):
        return None
    try:
        value = float(form[name])
    except ValueError:
        raise Open311Error(400, f"{name}: not a number") from None
    if not low <= value <= high:
        raise Open311Error(400, f"{name}: out of range")
    return value


def post_request(conn: sqlite3.Connection, form: dict[str, str]) -> Created:
    """POST requests.json (form-encoded): api_key, service_code, a location (lat and long, or
    address_string, or address_id), description."""
    name = key_name(conn, form.get("api_key"))
    code = form.get("service_code", "")
    if code not in _NAMES:
        raise Open311Error(
            404 if code else 400, f"service_code: no service {code[:40]!r}" if code else "service_code is required"
        )
    lat, lon = _float(form, "lat", -90, 90), _float(form, "long", -180, 180)
    address = (form.get("address_string") or form.get("address_id") or "").strip()
    if (lat is None or lon is None) and not address:
        raise Open311Error(400, "a location is required: lat and long, address_string or address_id")
    description = (form.get("description") or "").strip()
    if not description:
        raise Open311Error(400, "description is required")
    if len(description) > 4000 or len(address) > 300:
        raise Open311Error(400, "description is at most 4000 characters, address_string 300")
    raised = intake.post_report(conn, audit.Actor(f"open311:{name}", None, None), code, description, lon, lat, address)
    notice = (
        f"Joined open request {raised.incident_id}: the same place and service within {raised.dedup_minutes:g} min."
        if raised.attached
        else NOTICE
    )
    return Created(service_request_id=str(raised.incident_id), service_notice=notice, account_id=None)
