"""Evidence clips: asked for by people, built and uploaded by the boxes, signed into packages.

The life of a clip: `request` stores it `queued` with a `clip` command for its box (kept in
`commands` until the box replies, so a box that is offline now builds it when it returns); the box
reports `building` (`report`), sends the MP4 in resumable pieces (`upload_chunk`: `uploading`,
`received` says where to resume) and then its manifest (`store_manifest`), which the hub checks
against what it received before anything is kept: size, SHA-256, camera. Only then is the clip
`ready`. `package` signs an evidence package for each download and records the download in the
clip's chain of custody and in the audit log first, so the package holds its own download.

Who sees a clip: admins every clip, police the clips of their sites' cameras, anyone else only the
clips they asked for themselves, and never a camera they may not see (404, as for no clip at all).
The routes (api/routes/clips.py) and the CLI (commands/evidence.py) both call these functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.durable import fsync_dir, write_atomic
from contract import Command
from hub.evidence import keys, package
from hub.models import CameraId, Principal, camera_id, split_camera_id
from hub.security import new_token, token_digest
from hub.services import alerts, audit
from hub.services.audit import Actor
from hub.store import transaction

MAX_WINDOW_SECONDS = 30 * 60  # a longer incident is several clips: each stays a size a box uploads in minutes
MAX_CLIP_BYTES = 4 << 30  # 30 min of 4K at 8 Mbit/s is 1.8 GB; anything far beyond is not a clip of ours
MAX_CHUNK_BYTES = 64 << 20  # one PUT; the agent sends a few MiB at a time and resumes after a break
MAX_MANIFEST_BYTES = 1 << 20
MAX_EPOCH = 4102444800.0  # 2100-01-01
FUTURE_SLACK_SECONDS = 60.0  # a window may end a moment from now (clock skew), not later
CLIPS_DIR = "clips"
DEVICE_TOKEN_PREFIX = "dld"
Status = Literal["queued", "building", "uploading", "ready", "failed"]
_RANGE = re.compile(r"^bytes (\d{1,15})-(\d{1,15})/(\d{1,15})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class ClipRefused(Exception):
    """A request the hub refuses; `status` is the HTTP status the routes answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- models -------------------------------------------------------------------------------------
class ClipRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    camera: CameraId
    start: float | str = Field(description="ISO 8601 (UTC if no offset) or epoch seconds.")
    end: float | str = Field(description="ISO 8601 (UTC if no offset) or epoch seconds; after start.")
    reason: str = Field(min_length=3, max_length=500, description="The case number or why the clip is needed.")


class Clip(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    status: Status
    camera: str = Field(description="site.device.camera")
    start: float
    end: float
    reason: str
    requested_by: str
    requested: float
    progress: float = Field(description="0 to 1: how far the box has got building, then uploading.")
    error: str | None = Field(description="Why it failed; while uploading, the last upload the hub refused.")
    bytes: int | None
    received: int = Field(description="Bytes of the MP4 the hub holds: the box resumes from here.")
    sha256: str | None = Field(description="SHA-256 of the MP4, checked against the manifest.")
    ready: float | None
    package: str | None = Field(description="URL of the evidence package once ready.")


class ClipList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    items: list[Clip]


class ClipReport(BaseModel):
    """What a box says about a clip before its upload: building (with progress) or failed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["building", "failed"]
    progress: float = Field(0.0, ge=0.0, le=1.0)
    error: str | None = Field(None, max_length=2000)


@dataclass(frozen=True)
class DeviceCaller:
    """A box, identified by its HTTP credential (`diaolou-hub devices token`)."""

    site: str
    device: str

    def actor(self, address: str | None) -> Actor:
        return Actor(f"device:{self.site}/{self.device}", "device", address)


# --- helpers ------------------------------------------------------------------------------------
def new_id(now: float) -> str:
    """A ULID: 48 bits of milliseconds, 80 random bits, Crockford base32 (sorts by time)."""
    value = (int(now * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def parse_time(value: float | str, name: str) -> float:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ClipRefused(422, f"{name}: not an ISO 8601 time: {value[:40]!r}") from None
        value = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(value) or not 0 <= value < MAX_EPOCH:
        raise ClipRefused(422, f"{name}: not a time between 1970 and 2100")
    return float(value)


def clips_dir(data_dir: Path) -> Path:
    return data_dir / CLIPS_DIR


def _paths(data_dir: Path, clip_id: str) -> tuple[Path, Path, Path]:
    """(upload in progress, the stored MP4, the stored manifest)"""
    base = clips_dir(data_dir)
    return base / f"{clip_id}.mp4.part", base / f"{clip_id}.mp4", base / f"{clip_id}.manifest.json"


def add_custody(
    conn: sqlite3.Connection, clip_id: str, actor: Actor, action: str, now: float, **detail: object
) -> None:
    conn.execute(
        "INSERT INTO clip_custody (clip, time, actor, role, action, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (clip_id, now, actor.name, actor.role, action, json.dumps(detail, ensure_ascii=False, sort_keys=True)),
    )


def _clip(row: sqlite3.Row) -> Clip:
    return Clip(
        id=row["id"],
        status=row["status"],
        camera=camera_id(row["site"], row["device"], row["camera"]),
        start=row["start"],
        end=row["end"],
        reason=row["reason"],
        requested_by=row["requested_by"],
        requested=row["requested"],
        progress=row["progress"],
        error=row["error"],
        bytes=row["bytes"],
        received=row["received"],
        sha256=row["sha256"],
        ready=row["ready"],
        package=f"/api/v1/clips/{row['id']}/package" if row["status"] == "ready" else None,
    )


def _may_see(principal: Principal, row: sqlite3.Row) -> bool:
    if not principal.may_see_camera(row["site"], row["device"], row["camera"]):
        return False
    return principal.role in ("admin", "police") or row["requested_by"] == principal.username


def _row(conn: sqlite3.Connection, clip_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute("SELECT * FROM clips WHERE id = ?", (clip_id[:64],)).fetchone()
    return row


# --- people's side ------------------------------------------------------------------------------
def request(
    conn: sqlite3.Connection, principal: Principal, actor: Actor, body: ClipRequest, now: float | None = None
) -> Clip:
    """Store the request and its command for the box. Refused: a camera the caller may not see
    (404), end not after start, a window over MAX_WINDOW_SECONDS, in the future, or older than the
    box's last heartbeat says it keeps (422)."""
    now = time.time() if now is None else now
    if alerts.get_camera(conn, principal, body.camera) is None:
        raise ClipRefused(404, f"no camera {body.camera!r}")
    start, end = parse_time(body.start, "start"), parse_time(body.end, "end")
    if end <= start:
        raise ClipRefused(422, "the window's end must be after its start")
    if end - start > MAX_WINDOW_SECONDS:
        raise ClipRefused(
            422, f"a clip may cover at most {MAX_WINDOW_SECONDS // 60} minutes; ask for several clips instead"
        )
    if end > now + FUTURE_SLACK_SECONDS:
        raise ClipRefused(422, "the window ends in the future: ask again once it has been recorded")
    split = split_camera_id(body.camera)
    assert split is not None  # get_camera found it
    site, device, camera = split
    health = alerts.reported_health(conn, site, device, camera)
    if health is not None and health.recorded_from is not None and end <= health.recorded_from:
        kept = package.iso(health.recorded_from)
        raise ClipRefused(422, f"the box keeps {camera}'s recordings from {kept} on: the window ends before that")
    clip_id = new_id(now)
    command = Command(
        id=clip_id,
        time=now,
        args={"clip": clip_id, "camera": camera, "start": start, "end": end, "upload": f"/api/v1/clips/{clip_id}"},
    )
    with transaction(conn):
        conn.execute(
            'INSERT INTO clips (id, site, device, camera, start, "end", reason, requested_by, requested_role, '
            "requested, status, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
            (clip_id, site, device, camera, start, end, body.reason, principal.username, principal.role, now, now),
        )
        conn.execute(
            "INSERT INTO commands (id, site, device, name, payload, created) VALUES (?, ?, ?, 'clip', ?, ?)",
            (clip_id, site, device, command.model_dump_json(), now),
        )
        add_custody(
            conn, clip_id, actor, "requested", now, reason=body.reason, start=package.iso(start), end=package.iso(end)
        )
        audit.record(conn, actor, "clip.request", clip_id, camera=body.camera, start=start, end=end, reason=body.reason)
    row = _row(conn, clip_id)
    assert row is not None
    return _clip(row)


def get(conn: sqlite3.Connection, principal: Principal, clip_id: str) -> Clip | None:
    row = _row(conn, clip_id)
    return _clip(row) if row is not None and _may_see(principal, row) else None


def list_clips(conn: sqlite3.Connection, principal: Principal, limit: int = 100) -> ClipList:
    """The clips the caller may see, newest first."""
    rows = conn.execute("SELECT * FROM clips ORDER BY requested DESC, id DESC").fetchall()
    return ClipList(items=[_clip(r) for r in rows if _may_see(principal, r)][:limit])


def package_to(
    conn: sqlite3.Connection, data_dir: Path, principal: Principal, actor: Actor, clip_id: str, out: Path
) -> Clip:
    """Write the signed evidence package of a ready clip to `out`. The download is recorded in the
    clip's custody and the audit log before the package is signed, so the package includes it."""
    clip = get(conn, principal, clip_id)
    if clip is None:
        raise ClipRefused(404, f"no clip {clip_id[:64]!r}")
    if clip.status != "ready":
        raise ClipRefused(409, f"clip {clip.id} is {clip.status}, not ready: no package yet")
    now = time.time()
    with transaction(conn):
        add_custody(conn, clip.id, actor, "downloaded", now, address=actor.address)
        audit.record(conn, actor, "clip.download", clip.id, camera=clip.camera, sha256=clip.sha256)
    _, mp4, manifest_path = _paths(data_dir, clip.id)
    manifest = manifest_path.read_bytes()
    row = _row(conn, clip.id)
    assert row is not None
    entries = [
        package.CustodyEntry(
            time=package.iso(r["time"]),
            actor=r["actor"],
            role=r["role"],
            action=r["action"],
            detail=json.loads(r["detail"]),
        )
        for r in conn.execute("SELECT * FROM clip_custody WHERE clip = ? ORDER BY id", (clip.id,))
    ]
    custody = package.Custody(
        clip_id=clip.id,
        camera=clip.camera,
        start=package.iso(clip.start),
        end=package.iso(clip.end),
        reason=clip.reason,
        requested_by=clip.requested_by,
        requested_role=row["requested_role"],
        requested=package.iso(clip.requested),
        sha256=row["sha256"],
        bytes=row["bytes"],
        manifest_sha256=row["manifest_sha256"],
        entries=entries,
    )
    package.build(out, mp4, manifest, custody, keys.load_or_create(data_dir), now)
    return clip


# --- the box's side -----------------------------------------------------------------------------
def device_clip(conn: sqlite3.Connection, caller: DeviceCaller, clip_id: str) -> sqlite3.Row:
    """The clip, if it is one of this box's cameras (404 otherwise: a box learns nothing of others)."""
    row = _row(conn, clip_id)
    if row is None or (row["site"], row["device"]) != (caller.site, caller.device):
        raise ClipRefused(404, f"no clip {clip_id[:64]!r} for {caller.site}/{caller.device}")
    if row["status"] in ("ready", "failed"):
        raise ClipRefused(409, f"clip {clip_id} is {row['status']} already")
    return row


def report(conn: sqlite3.Connection, caller: DeviceCaller, address: str | None, clip_id: str, body: ClipReport) -> Clip:
    now = time.time()
    with transaction(conn):
        row = device_clip(conn, caller, clip_id)
        if body.status == "failed":
            conn.execute(
                "UPDATE clips SET status = 'failed', error = ?, updated = ? WHERE id = ?",
                (body.error or "the box gave no reason", now, row["id"]),
            )
            add_custody(conn, row["id"], caller.actor(address), "failed", now, error=body.error)
        else:
            if row["status"] == "queued":
                add_custody(conn, row["id"], caller.actor(address), "building", now)
            conn.execute(
                "UPDATE clips SET status = 'building', progress = ?, updated = ? WHERE id = ?",
                (body.progress, now, row["id"]),
            )
    done = _row(conn, clip_id)
    assert done is not None
    return _clip(done)


def parse_range(header: str | None, length: int) -> tuple[int, int]:
    """(start, total) of a `Content-Range: bytes START-END/TOTAL` piece whose body has `length` bytes."""
    match = _RANGE.match(header or "")
    if match is None:
        raise ClipRefused(400, "Content-Range must be `bytes START-END/TOTAL` (END inclusive)")
    start, last, total = (int(g) for g in match.groups())
    if total > MAX_CLIP_BYTES:
        raise ClipRefused(413, f"a clip may be at most {MAX_CLIP_BYTES} bytes, this one says {total}")
    if last < start or last >= total:
        raise ClipRefused(400, f"Content-Range {header!r} is not a range inside the file")
    if length != last - start + 1:
        raise ClipRefused(400, f"the body has {length} bytes, Content-Range says {last - start + 1}: send it again")
    return start, total


def upload_chunk(
    conn: sqlite3.Connection, data_dir: Path, caller: DeviceCaller, clip_id: str, content_range: str | None, body: bytes
) -> Clip:
    """Append one piece of the MP4. It must start where the hub's copy ends (`received`), or at 0
    to start over; anything else is 409 with the offset to resume from."""
    start, total = parse_range(content_range, len(body))
    now = time.time()
    with transaction(conn):
        row = device_clip(conn, caller, clip_id)
        part, _, _ = _paths(data_dir, row["id"])  # the stored id, never the URL's text, names files
        received = row["received"]
        if start != 0 and (start != received or total != row["bytes"]):
            raise ClipRefused(
                409, f"resume at byte {received} of {row['bytes']} (this piece starts at {start} of {total})"
            )
        part.parent.mkdir(parents=True, exist_ok=True)
        with open(part, "r+b" if start and part.exists() else "wb") as fh:
            fh.truncate(start)  # bytes past `received` are from a piece the hub never confirmed
            fh.seek(start)
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        received = start + len(body)
        if row["status"] != "uploading":
            add_custody(conn, row["id"], caller.actor(None), "uploading", now, bytes=total)
        conn.execute(
            "UPDATE clips SET status = 'uploading', bytes = ?, received = ?, progress = ?, updated = ? WHERE id = ?",
            (total, received, received / total, now, row["id"]),
        )
    done = _row(conn, clip_id)
    assert done is not None
    return _clip(done)


def _check_manifest(raw: bytes, row: sqlite3.Row) -> dict[str, Any]:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ClipRefused(413, f"a manifest may be at most {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClipRefused(422, f"the manifest is not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise ClipRefused(422, "the manifest must be a JSON object")
    sha, size = manifest.get("sha256"), manifest.get("bytes")
    if not isinstance(sha, str) or not _SHA256.match(sha) or not isinstance(size, int) or isinstance(size, bool):
        raise ClipRefused(422, "the manifest needs `sha256` (64 hex digits) and `bytes` (an integer)")
    if manifest.get("camera") != row["camera"] or manifest.get("site", row["site"]) != row["site"]:
        raise ClipRefused(422, f"the manifest is of camera {manifest.get('camera')!r}, the clip of {row['camera']!r}")
    if manifest.get("device", row["device"]) != row["device"]:
        raise ClipRefused(422, "the manifest names another device")
    return manifest


def store_manifest(
    conn: sqlite3.Connection, data_dir: Path, caller: DeviceCaller, address: str | None, clip_id: str, raw: bytes
) -> Clip:
    """Check the uploaded MP4 against its manifest and keep both; the clip is then `ready`. A
    truncated upload is 409 (resume it); a size or SHA-256 that does not match is 422 and the
    upload is discarded: nothing of it is kept, the box sends it again."""
    now = time.time()
    actor = caller.actor(address)
    with transaction(conn):
        row = device_clip(conn, caller, clip_id)
        part, mp4, manifest_path = _paths(data_dir, row["id"])
        manifest = _check_manifest(raw, row)
        if row["bytes"] is None or row["received"] < row["bytes"] or not part.exists():
            raise ClipRefused(409, f"the upload is incomplete: {row['received']} of {row['bytes'] or '?'} bytes")
        digest = package.sha256_file(part)
        problem = None
        if manifest["bytes"] != row["bytes"] or part.stat().st_size != row["bytes"]:
            problem = f"the manifest says {manifest['bytes']} bytes, the upload has {row['bytes']}"
        elif digest != manifest["sha256"]:
            problem = f"the upload's SHA-256 {digest} does not match the manifest's {manifest['sha256']}"
        if problem is None:
            write_atomic(manifest_path, raw, mode=0o640)
            os.replace(part, mp4)
            fsync_dir(mp4.parent)
            conn.execute(
                "UPDATE clips SET status = 'ready', error = NULL, progress = 1, sha256 = ?, manifest_sha256 = ?, "
                "ready = ?, updated = ? WHERE id = ?",
                (digest, hashlib.sha256(raw).hexdigest(), now, now, row["id"]),
            )
            add_custody(
                conn,
                row["id"],
                actor,
                "verified",
                now,
                sha256=digest,
                bytes=row["bytes"],
                built=manifest.get("created"),
            )
            audit.record(conn, actor, "clip.stored", row["id"], sha256=digest, bytes=row["bytes"])
    if problem is not None:
        with transaction(conn):  # outside the refused transaction above, so that this is kept
            conn.execute(
                "UPDATE clips SET received = 0, bytes = NULL, progress = 0, error = ?, updated = ? WHERE id = ?",
                (f"upload refused and discarded: {problem}", now, clip_id),
            )
            add_custody(conn, clip_id, actor, "upload-refused", now, problem=problem)
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise ClipRefused(422, f"{problem}: the upload was discarded, send it again")
    done = _row(conn, clip_id)
    assert done is not None
    return _clip(done)


def box_refused(conn: sqlite3.Connection, clip_id: str, error: str) -> None:
    """The box answered the clip command with `ok: false` (no recording, a bad window...): the clip
    fails with its reason, unless it is already ready or failed. Call inside a transaction."""
    row = _row(conn, clip_id)
    if row is None or row["status"] in ("ready", "failed"):
        return
    now = time.time()
    conn.execute("UPDATE clips SET status = 'failed', error = ?, updated = ? WHERE id = ?", (error, now, clip_id))
    caller = DeviceCaller(row["site"], row["device"])
    add_custody(conn, clip_id, caller.actor(None), "failed", now, error=error)


# --- box credentials ----------------------------------------------------------------------------
def issue_device_token(conn: sqlite3.Connection, actor: Actor, site: str, device: str) -> str:
    """A new HTTP credential for a box, replacing its old one; shown once, kept as its SHA-256."""
    token = new_token(DEVICE_TOKEN_PREFIX)
    now = time.time()
    with transaction(conn):
        conn.execute(
            "INSERT INTO device_credentials (site, device, digest, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (site, device) DO UPDATE SET digest = excluded.digest, created = excluded.created",
            (site, device, token_digest(token), now),
        )
        audit.record(conn, actor, "device.token", f"{site}/{device}")
    return token


def authenticate_device(conn: sqlite3.Connection, token: str) -> DeviceCaller | None:
    if not token.startswith(DEVICE_TOKEN_PREFIX + "_"):
        return None
    row = conn.execute(
        "SELECT site, device FROM device_credentials WHERE digest = ?", (token_digest(token),)
    ).fetchone()
    return None if row is None else DeviceCaller(row["site"], row["device"])
