"""Notification channels and arming schedules: what the API and the page change.

A channel belongs to one user; its owner and admins may see and change it, anyone else is told
it does not exist (None here, 404 at the route). Arming is per user and camera: a police officer
who watches a shop's camera at night must not be able to silence the shop owner's phone.
Every change lands in the audit log, with the URL masked and the secret left out.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Sequence

from hub.models import Principal
from hub.notify import robots, schedule
from hub.notify.message import trial_message
from hub.notify.models import (
    Arming,
    ArmingSegment,
    ArmingSet,
    Channel,
    ChannelCreate,
    ChannelUpdate,
    SendResult,
)
from hub.notify.settings import NotifySettings
from hub.services import audit
from hub.store import transaction

_CHANNEL = (
    "SELECT c.*, u.username, (SELECT count(*) FROM notify_outbox o WHERE o.channel_id = c.id "
    "AND o.state = 'pending') AS pending FROM notify_channels c JOIN users u ON u.id = c.user_id"
)


class ChannelError(ValueError):
    """A channel that cannot be saved; the message says why, for the person."""


def _channel(row: sqlite3.Row) -> Channel:
    return Channel(
        id=row["id"],
        user=row["username"],
        name=row["name"],
        kind=row["kind"],
        url=robots.mask_url(row["url"]),
        secret_set=bool(row["secret"]),
        enabled=bool(row["enabled"]),
        created=row["created"],
        updated=row["updated"],
        pending=row["pending"],
        failures=row["failures"],
        last_error=row["last_error"],
        last_sent=row["last_sent"],
    )


def list_channels(conn: sqlite3.Connection, user_id: int) -> list[Channel]:
    return [_channel(r) for r in conn.execute(f"{_CHANNEL} WHERE c.user_id = ? ORDER BY c.id", (user_id,))]


def _row(conn: sqlite3.Connection, principal: Principal, channel_id: int) -> sqlite3.Row | None:
    """The channel if `principal` may manage it (its owner, or an admin), else None."""
    row: sqlite3.Row | None = conn.execute(f"{_CHANNEL} WHERE c.id = ?", (channel_id,)).fetchone()
    if row is None or (row["user_id"] != principal.user_id and principal.role != "admin"):
        return None
    return row


def get_channel(conn: sqlite3.Connection, principal: Principal, channel_id: int) -> Channel | None:
    row = _row(conn, principal, channel_id)
    return None if row is None else _channel(row)


def send_test(
    conn: sqlite3.Connection, actor: audit.Actor, principal: Principal, channel_id: int, settings: NotifySettings
) -> SendResult | None:
    """Post a test message now, past the outbox; None for a channel `principal` may not manage."""
    row = _row(conn, principal, channel_id)
    if row is None:
        return None
    link = f"{settings.public_url}/notifications" if settings.public_url else None
    try:
        robots.post(
            row["kind"], row["url"], row["secret"], trial_message(principal.locale, link), settings.allowed_hosts
        )
        error = None
    except robots.DeliveryError as exc:
        error = str(exc)
    audit.record(conn, actor, "notify.channel.test", f"channel:{channel_id}", user=row["username"], ok=error is None)
    return SendResult(ok=error is None, error=error)


def _check(kind: str, url: str, secret: str | None, allowed_hosts: Collection[str]) -> None:
    try:
        robots.check_url(url, allowed_hosts)
    except ValueError as exc:
        raise ChannelError(str(exc)) from None
    if secret and kind != "dingtalk":
        raise ChannelError("a signing secret is for DingTalk robots only")


def add_channel(
    conn: sqlite3.Connection,
    actor: audit.Actor,
    user_id: int,
    body: ChannelCreate,
    allowed_hosts: Collection[str],
) -> int:
    _check(body.kind, body.url, body.secret, allowed_hosts)
    now = time.time()
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO notify_channels (user_id, name, kind, url, secret, enabled, created, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (user_id, body.name, body.kind, body.url, body.secret, int(body.enabled), now, now),
        )
        channel_id = int(cur.lastrowid or 0)
        owner = conn.execute("SELECT username FROM users WHERE id = ?", (user_id,)).fetchone()[0]
        audit.record(
            conn,
            actor,
            "notify.channel.add",
            f"channel:{channel_id}",
            user=owner,
            kind=body.kind,
            name=body.name,
            url=robots.mask_url(body.url),
            secret=body.secret is not None,
        )
    return channel_id


def update_channel(
    conn: sqlite3.Connection,
    actor: audit.Actor,
    principal: Principal,
    channel_id: int,
    body: ChannelUpdate,
    allowed_hosts: Collection[str],
) -> Channel | None:
    with transaction(conn):
        row = _row(conn, principal, channel_id)
        if row is None:
            return None
        url = body.url if body.url is not None else row["url"]
        secret = row["secret"] if body.secret is None else (body.secret or None)
        if body.url is not None or body.secret:
            _check(row["kind"], url, secret, allowed_hosts)
        name = body.name if body.name is not None else row["name"]
        enabled = body.enabled if body.enabled is not None else bool(row["enabled"])
        # A changed address or a re-enabled channel is tried at once, not after the old backoff.
        conn.execute(
            "UPDATE notify_channels SET name = ?, url = ?, secret = ?, enabled = ?, updated = ?, failures = 0, "
            "retry_at = 0 WHERE id = ?",
            (name, url, secret, int(enabled), time.time(), channel_id),
        )
        changed = {k: v for k, v in body.model_dump(exclude_none=True).items() if k not in ("url", "secret")}
        if body.url is not None:
            changed["url"] = robots.mask_url(body.url)
        if body.secret is not None:
            changed["secret"] = "set" if body.secret else "removed"
        audit.record(conn, actor, "notify.channel.update", f"channel:{channel_id}", user=row["username"], **changed)
    return get_channel(conn, principal, channel_id)


def remove_channel(conn: sqlite3.Connection, actor: audit.Actor, principal: Principal, channel_id: int) -> bool:
    """Its undelivered alerts go with it."""
    with transaction(conn):
        row = _row(conn, principal, channel_id)
        if row is None:
            return False
        conn.execute("DELETE FROM notify_channels WHERE id = ?", (channel_id,))
        audit.record(
            conn, actor, "notify.channel.remove", f"channel:{channel_id}", user=row["username"], name=row["name"]
        )
    return True


# --- arming ----------------------------------------------------------------------------------------
def get_arming(conn: sqlite3.Connection, user_id: int, camera: str, default_zone: str, now: float) -> Arming:
    row = conn.execute(
        "SELECT time_zone, segments FROM notify_arming WHERE user_id = ? AND camera = ?", (user_id, camera)
    ).fetchone()
    if row is None:
        return Arming(camera=camera, time_zone=default_zone, segments=[], always=True, armed_now=True)
    segments = [ArmingSegment.model_validate(s) for s in json.loads(row["segments"])]
    return Arming(
        camera=camera,
        time_zone=row["time_zone"],
        segments=segments,
        always=False,
        armed_now=schedule.armed(segments, row["time_zone"], now),
    )


def list_arming(
    conn: sqlite3.Connection, user_id: int, cameras: Sequence[str], default_zone: str, now: float
) -> list[Arming]:
    return [get_arming(conn, user_id, camera, default_zone, now) for camera in cameras]


def set_arming(
    conn: sqlite3.Connection,
    actor: audit.Actor,
    user_id: int,
    camera: str,
    body: ArmingSet,
    default_zone: str,
) -> Arming:
    zone = body.time_zone or default_zone
    try:
        schedule.zone(zone)
    except ValueError as exc:
        raise ChannelError(str(exc)) from None
    segments = json.dumps([s.model_dump() for s in body.segments])
    with transaction(conn):
        conn.execute(
            "INSERT INTO notify_arming (user_id, camera, time_zone, segments, updated) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (user_id, camera) DO UPDATE SET time_zone = excluded.time_zone, "
            "segments = excluded.segments, updated = excluded.updated",
            (user_id, camera, zone, segments, time.time()),
        )
        audit.record(
            conn, actor, "notify.arming.set", camera, time_zone=zone, segments=schedule.describe(body.segments)
        )
    return get_arming(conn, user_id, camera, default_zone, time.time())


def clear_arming(conn: sqlite3.Connection, actor: audit.Actor, user_id: int, camera: str) -> None:
    """Back to the default: every alert of the camera is sent."""
    with transaction(conn):
        conn.execute("DELETE FROM notify_arming WHERE user_id = ? AND camera = ?", (user_id, camera))
        audit.record(conn, actor, "notify.arming.clear", camera)
