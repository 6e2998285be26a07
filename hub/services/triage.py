"""Triage: alerts never become incidents by themselves; rules propose them.

A rule matches alerts by site, camera, zone, event kind, detail values and local time of day (a
person in a closed shop's zone at night, a forced dormitory door); a `camera_offline` rule with
`offline_minutes` proposes only once a camera has stayed offline that long. An alert of the same
place (site, box, camera) and category as an open incident updated within the rule's dedup window
attaches to that incident instead of opening another.

`Triage` reads the events table in arrival order from a cursor kept in hub.db; a batch and the new
cursor are one transaction, so a hub stopped at any point neither skips nor doubles a proposal.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.services import audit, incidents, police
from hub.services.incidents import FINAL, NewIncident, Priority
from hub.services.worker import GiveWay, PollingWorker
from hub.store import transaction

TRIAGE = audit.Actor("triage", None, None)
BATCH = 500
POLL_SECONDS = 0.5
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class TriageRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=64, description="Unique name of the rule.")
    kinds: list[str] = Field(min_length=1, description="Event kinds it matches: person, door_alarm, camera_offline...")
    sites: list[str] = Field(default_factory=list, description="Only these sites (empty: any).")
    cameras: list[str] = Field(default_factory=list, description="Only these cameras, site.device.camera (empty: any).")
    zones: list[str] = Field(default_factory=list, description="Only alerts in these zones (empty: any).")
    detail: dict[str, str] = Field(
        default_factory=dict, description="Detail values that must match, e.g. alarm: forced."
    )
    start: str | None = Field(None, pattern=HHMM, description="Local time of day it starts (HH:MM); with end.")
    end: str | None = Field(None, pattern=HHMM, description="Local time it ends; before start means past midnight.")
    time_zone: str = Field("Asia/Shanghai", description="IANA zone for start/end.")
    offline_minutes: int = Field(60, ge=1, le=10080, description="camera_offline: propose after this long offline.")
    category: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="Category of the incident it proposes.")
    priority: Priority = Field("normal", description="Priority of the incident.")
    dedup_minutes: float = Field(30, ge=0, le=10080, description="Alerts of the same place within this attach.")
    escalate: bool = Field(False, description="Send each incident it opens straight to the site's police.")

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def in_hours(self, t: float) -> bool:
        if self.start is None or self.end is None:
            return True
        local = datetime.fromtimestamp(t, ZoneInfo(self.time_zone)).strftime("%H:%M")
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def matches(self, c: Candidate) -> bool:
        if c.kind not in self.kinds or (self.sites and c.site not in self.sites):
            return False
        if self.cameras and f"{c.site}.{c.device}.{c.camera}" not in self.cameras:
            return False
        if self.zones and c.detail.get("zone") not in self.zones:
            return False
        if any(str(c.detail.get(key)) != value for key, value in self.detail.items()):
            return False
        return self.in_hours(c.time)


@dataclass(frozen=True)
class Candidate:
    """What a rule is matched against: an alert (an events row), or a report posted over Open311
    (kind `open311`, no site, detail `service_code`)."""

    kind: str
    site: str | None
    device: str | None
    camera: str | None
    time: float
    detail: dict[str, object]

    @classmethod
    def of_row(cls, row: sqlite3.Row) -> Candidate:
        detail = json.loads(row["detail"]) if row["detail"] else {}
        return cls(row["kind"], row["site"], row["device"], row["camera"], row["time"], detail)


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rules: list[TriageRule] = Field(description="Every rule; loading a file replaces all rules.")


def load_rules_file(path: Path) -> list[TriageRule]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        rules = RuleFile.model_validate(raw).rules
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path}: {where}: {first['msg']}") from None
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: two rules share a name")
    return rules


def set_rules(conn: sqlite3.Connection, actor: audit.Actor, rules: list[TriageRule]) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM triage_rules")
        for rule in rules:
            conn.execute("INSERT INTO triage_rules VALUES (?, ?, ?)", (rule.name, rule.model_dump_json(), time.time()))
        audit.record(conn, actor, "triage.rules", None, names=[r.name for r in rules])


def get_rules(conn: sqlite3.Connection) -> list[TriageRule]:
    return [TriageRule.model_validate_json(r[0]) for r in conn.execute("SELECT rule FROM triage_rules ORDER BY name")]


_OPEN = f"status NOT IN ({','.join(repr(s) for s in sorted(FINAL))})"


def open_at(
    conn: sqlite3.Connection, site: str | None, device: str | None, camera: str | None, category: str, since: float
) -> int | None:
    """The open incident of this place (site, box, camera) and category updated since `since`:
    the dedup window every source goes through (rules, an operator's hand, Open311 reports)."""
    found = conn.execute(
        f"SELECT id FROM incidents WHERE site IS ? AND device IS ? AND camera IS ? AND category = ? AND {_OPEN} "
        "AND updated >= ? ORDER BY id DESC LIMIT 1",
        (site, device, camera, category, since),
    ).fetchone()
    return None if found is None else int(found[0])


def propose(conn: sqlite3.Connection, rule: TriageRule, row: sqlite3.Row, now: float) -> tuple[int, bool]:
    """(incident id, opened?) for one matching alert: attach to the open incident of the same place
    and category within the dedup window, or open one. Call inside a transaction."""
    if incidents.incident_of_alert(conn, row["id"]) is not None:
        return incidents.incident_of_alert(conn, row["id"]) or 0, False
    found = open_at(conn, row["site"], row["device"], row["camera"], rule.category, now - rule.dedup_minutes * 60)
    if found is not None:
        incidents.attach(conn, found, row["id"], now)
        return found, False
    where = f"{row['site']}.{row['device']}" + (f".{row['camera']}" if row["camera"] else "")
    new = NewIncident(
        category=rule.category,
        priority=rule.priority,
        title=f"{row['kind']} @ {where}",
        description=f"proposed by rule {rule.name}",
        site=row["site"],
        device=row["device"],
        camera=row["camera"],
        source="rule",
    )
    incident_id = incidents.create(conn, TRIAGE, new, [row["id"]], now)
    if rule.escalate:
        police.escalate_by_rule(conn, TRIAGE, incident_id, rule.name, now)
    return incident_id, True


_NEW = (
    "SELECT rowid, id, site, device, camera, kind, time, detail FROM events WHERE rowid > ? "
    "AND phase IN ('new', 'instant') AND test = 0 ORDER BY rowid LIMIT ?"
)
# camera_offline events old enough, with no camera_back for that camera since, on no incident yet.
_STILL_OFFLINE = (
    "SELECT e.rowid, e.id, e.site, e.device, e.camera, e.kind, e.time, e.detail FROM events e "
    "WHERE e.kind = 'camera_offline' AND e.phase IN ('new', 'instant') AND e.test = 0 AND e.time <= ? AND e.time > ? "
    "AND NOT EXISTS (SELECT 1 FROM incident_alerts a WHERE a.event_id = e.id) "
    "AND NOT EXISTS (SELECT 1 FROM events b WHERE b.kind = 'camera_back' AND b.site = e.site AND b.device = e.device "
    "AND b.camera IS e.camera AND b.time >= e.time)"
)


def triage_step(conn: sqlite3.Connection, now: float, batch: int = BATCH) -> tuple[int, int]:
    """One batch: (alerts read, incidents opened)."""
    rules = get_rules(conn)
    opened = 0
    with transaction(conn):
        position = conn.execute("SELECT position FROM notify_cursor WHERE name = 'triage'").fetchone()[0]
        rows = conn.execute(_NEW, (position, batch)).fetchall()
        for row in rows:
            candidate = Candidate.of_row(row)
            for rule in rules:
                if row["kind"] != "camera_offline" and rule.matches(candidate):
                    opened += propose(conn, rule, row, now)[1]
                    break
        if rows:
            conn.execute("UPDATE notify_cursor SET position = ? WHERE name = 'triage'", (rows[-1]["rowid"],))
        for rule in rules:
            if "camera_offline" in rule.kinds:
                cutoff = now - rule.offline_minutes * 60
                for row in conn.execute(_STILL_OFFLINE, (cutoff, cutoff - 7 * 86400)).fetchall():
                    if rule.matches(Candidate.of_row(row)):
                        opened += propose(conn, rule, row, now)[1]
    return len(rows), opened


class Triage(PollingWorker):
    """The thread that runs `triage_step` beside ingest."""

    def __init__(self, db_path: Path, give_way: GiveWay | None = None) -> None:
        super().__init__(
            "triage", db_path, lambda conn: triage_step(conn, time.time())[0] >= BATCH, POLL_SECONDS, give_way=give_way
        )
