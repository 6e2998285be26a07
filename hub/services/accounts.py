"""Accounts: users, roles and what each may see; sign-in with rate limit and lock-out; sessions and
API tokens. The CLI (`diaolou-hub users ...`) and the API call these same functions.

Sign-in failures are counted per account and per address over a sliding window. Too many for
one account locks it until an admin unlocks it (a guessed password must not work on the sixth
try just because the attacker waited); too many from one address refuses that address until
the window has passed (one phone cannot lock out every account by guessing names).
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from functools import cache

from hub.models import ROLES, USERNAME_PATTERN, Locale, Principal, User, camera_id, is_site_name, split_camera_id
from hub.security import hash_password, new_token, token_digest, verify_password
from hub.services import audit
from hub.store import transaction

MIN_PASSWORD = 10


@cache
def _dummy_hash() -> str:
    """Verifying against this keeps an unknown user name as slow as a wrong password."""
    return hash_password(new_token("dummy"))


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why, for the person."""


class LoginRefused(Exception):
    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class LoginPolicy:
    max_failures_per_account: int = 5
    max_failures_per_address: int = 20
    window_seconds: float = 900.0
    session_seconds: float = 14 * 86400.0


@dataclass(frozen=True)
class Login:
    session: str  # the cookie's value
    bearer: str  # the token returned to API clients
    csrf: str
    expires: float
    principal: Principal


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > 256:
        raise AccountError("the password must have at most 256 characters")


def _scopes(role: str, cameras: list[str], sites: list[str], buildings: list[str]) -> list[tuple[str, str]]:
    for camera in cameras:
        if split_camera_id(camera) is None:
            raise AccountError(f"{camera!r} is not a camera id (site.device.camera, e.g. lanxi.shop-12.door)")
    for site in sites:
        if not is_site_name(site):
            raise AccountError(f"{site!r} is not a site name (lower-case letters, digits, - and _)")
    if cameras and role != "shop_owner":
        raise AccountError(f"--camera is for shop owners; a {role} sees cameras through its role")
    if sites and role != "police":
        raise AccountError(f"--site is for police users; a {role} does not take sites")
    for building in buildings:
        if not is_site_name(building):
            raise AccountError(f"{building!r} is not a building id (lower-case letters, digits, - and _)")
    if buildings and role != "dorm_manager":
        raise AccountError(f"--building is for dorm managers; a {role} does not take buildings")
    return [("camera", c) for c in cameras] + [("site", s) for s in sites] + [("building", b) for b in buildings]


def add_user(
    conn: sqlite3.Connection,
    actor: audit.Actor,
    username: str,
    password: str,
    role: str,
    cameras: list[str] | None = None,
    sites: list[str] | None = None,
    locale: Locale = "zh",
    buildings: list[str] | None = None,
) -> User:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    if not re.match(USERNAME_PATTERN, username):
        raise AccountError(f"invalid user name {username!r}: 2-63 lower-case letters, digits, '.', '_' or '-'")
    check_password_rules(password)
    scopes = _scopes(role, list(cameras or []), list(sites or []), list(buildings or []))
    digest = hash_password(password)
    now = time.time()
    with transaction(conn):
        try:
            cur = conn.execute(
                "INSERT INTO users (username, role, password_hash, locale, created, password_changed) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (username, role, digest, locale, now, now),
            )
        except sqlite3.IntegrityError:
            raise AccountError(f"a user named {username!r} exists already") from None
        user_id = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT OR IGNORE INTO user_scopes (user_id, kind, value) VALUES (?, ?, ?)",
            [(user_id, kind, value) for kind, value in scopes],
        )
        audit.record(
            conn,
            actor,
            "user.add",
            username,
            role=role,
            cameras=cameras or [],
            sites=sites or [],
            buildings=buildings or [],
        )
    return get_user(conn, username)


def get_user(conn: sqlite3.Connection, username: str) -> User:
    row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    if row is None:
        raise AccountError(f"no user named {username!r}")
    return _user(conn, row)


def list_users(conn: sqlite3.Connection) -> list[User]:
    return [_user(conn, row) for row in conn.execute("SELECT * FROM users ORDER BY username")]


def _user(conn: sqlite3.Connection, row: sqlite3.Row) -> User:
    scopes: dict[str, list[str]] = {"camera": [], "site": [], "building": [], "grid": []}
    for kind, value in conn.execute(
        "SELECT kind, value FROM user_scopes WHERE user_id = ? ORDER BY kind, value", (row["id"],)
    ):
        scopes[kind].append(value)
    return User(
        id=row["id"],
        username=row["username"],
        role=row["role"],
        locale=row["locale"],
        cameras=scopes["camera"],
        sites=scopes["site"],
        buildings=scopes["building"],
        grids=scopes["grid"],
        created=row["created"],
        locked=row["locked"] is not None,
    )


def remove_user(conn: sqlite3.Connection, actor: audit.Actor, username: str) -> None:
    with transaction(conn):
        user = get_user(conn, username)
        if user.role == "admin":
            admins = conn.execute("SELECT count(*) FROM users WHERE role = 'admin'").fetchone()[0]
            if admins <= 1:
                raise AccountError("this is the last admin; add another admin before removing it")
        conn.execute("DELETE FROM users WHERE id = ?", (user.id,))  # credentials and scopes cascade
        audit.record(conn, actor, "user.remove", username)


def set_password(conn: sqlite3.Connection, actor: audit.Actor, username: str, password: str) -> None:
    """A new password also signs the user out everywhere: whoever knew the old one is out."""
    check_password_rules(password)
    digest = hash_password(password)
    with transaction(conn):
        user = get_user(conn, username)
        conn.execute(
            "UPDATE users SET password_hash = ?, password_changed = ? WHERE id = ?", (digest, time.time(), user.id)
        )
        _revoke(conn, "user_id = ? AND kind != 'api'", (user.id,))
        audit.record(conn, actor, "user.set_password", username)


def unlock(conn: sqlite3.Connection, actor: audit.Actor, username: str) -> None:
    with transaction(conn):
        user = get_user(conn, username)
        conn.execute("UPDATE users SET locked = NULL WHERE id = ?", (user.id,))
        conn.execute("DELETE FROM login_failures WHERE username = ?", (username,))
        audit.record(conn, actor, "user.unlock", username)


# --- sign-in --------------------------------------------------------------------------------------
def login(conn: sqlite3.Connection, username: str, password: str, address: str, policy: LoginPolicy) -> Login:
    now = time.time()
    since = now - policy.window_seconds
    from_address = conn.execute(
        "SELECT count(*) FROM login_failures WHERE address = ? AND time > ?", (address, since)
    ).fetchone()[0]
    if from_address >= policy.max_failures_per_address:
        audit.record(conn, audit.Actor(username[:64], None, address), "login.throttled")
        raise LoginRefused("too many failed sign-ins from this address; try again later", 429)
    row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    ok = verify_password(password, row["password_hash"] if row is not None else _dummy_hash()) and row is not None
    if row is not None and row["locked"] is not None:
        audit.record(conn, audit.Actor(username, row["role"], address), "login.locked")
        raise LoginRefused("this account is locked after repeated failed sign-ins; ask an admin to unlock it", 423)
    if not ok:
        with transaction(conn):
            conn.execute(
                "INSERT INTO login_failures (username, address, time) VALUES (?, ?, ?)", (username[:64], address, now)
            )
            audit.record(conn, audit.Actor(username[:64], None, address), "login.failed")
            if row is not None:
                failures = conn.execute(
                    "SELECT count(*) FROM login_failures WHERE username = ? AND time > ?", (username, since)
                ).fetchone()[0]
                if failures >= policy.max_failures_per_account:
                    conn.execute("UPDATE users SET locked = ? WHERE id = ?", (now, row["id"]))
                    audit.record(conn, audit.Actor(username, row["role"], address), "user.locked", username)
        raise LoginRefused("wrong user name or password", 401)
    session, bearer, csrf = new_token("dls"), new_token("dlb"), new_token("dlc")
    login_id = token_digest(session)[:32]
    expires = now + policy.session_seconds
    with transaction(conn):
        for kind, secret in (("session", session), ("bearer", bearer)):
            conn.execute(
                "INSERT INTO credentials (digest, user_id, kind, login, csrf, created, last_used, expires, address) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token_digest(secret),
                    row["id"],
                    kind,
                    login_id,
                    csrf if kind == "session" else None,
                    now,
                    now,
                    expires,
                    address,
                ),
            )
        conn.execute("DELETE FROM login_failures WHERE username = ?", (username,))
        audit.record(conn, audit.Actor(username, row["role"], address), "login")
    principal = authenticate(conn, session, "session")
    assert principal is not None
    return Login(session, bearer, csrf, expires, principal)


def authenticate(conn: sqlite3.Connection, secret: str, kind: str) -> Principal | None:
    """The principal behind a session cookie, bearer or API token; None when it is unknown,
    revoked or expired (deny by default)."""
    digest = token_digest(secret)
    now = time.time()
    row = conn.execute(
        "SELECT c.digest, c.kind, c.csrf, c.login, c.expires, c.revoked, c.last_used, u.* FROM credentials c "
        "JOIN users u ON u.id = c.user_id WHERE c.digest = ?",
        (digest,),
    ).fetchone()
    if row is None or row["revoked"] is not None or row["expires"] <= now:
        return None
    if kind == "bearer" and row["kind"] not in ("bearer", "api"):
        return None
    if kind == "session" and row["kind"] != "session":
        return None
    if now - row["last_used"] > 60:  # a write per minute per credential, not per request
        conn.execute("UPDATE credentials SET last_used = ? WHERE digest = ?", (now, digest))
    scopes: dict[str, set[str]] = {"camera": set(), "site": set(), "building": set(), "grid": set()}
    for k, value in conn.execute("SELECT kind, value FROM user_scopes WHERE user_id = ?", (row["id"],)):
        scopes[k].add(value)
    if row["role"] == "dorm_manager" and scopes["building"]:
        scopes["camera"] |= door_cameras(conn, scopes["building"])
    return Principal(
        user_id=row["id"],
        username=row["username"],
        role=row["role"],
        locale=row["locale"],
        cameras=frozenset(scopes["camera"]),
        sites=frozenset(scopes["site"]),
        buildings=frozenset(scopes["building"]),
        grids=frozenset(scopes["grid"]),
        credential=digest,
        via=row["kind"],
        csrf=row["csrf"],
        login=row["login"],
    )


def door_cameras(conn: sqlite3.Connection, buildings: set[str]) -> set[str]:
    """The cameras watching the doors of these buildings (gate_doors.camera), as camera ids."""
    marks = ", ".join("?" * len(buildings))
    rows = conn.execute(
        f"SELECT site, device, camera FROM gate_doors WHERE camera IS NOT NULL AND building IN ({marks})",
        sorted(buildings),
    )
    return {camera_id(r["site"], r["device"], r["camera"]) for r in rows}


def logout(conn: sqlite3.Connection, principal: Principal, address: str | None, everywhere: bool = False) -> int:
    """Revoke this sign-in (its cookie and its bearer token), or every session and bearer token
    of the user; API tokens stay (they are revoked one by one). Returns how many were revoked."""
    with transaction(conn):
        if everywhere:
            count = _revoke(conn, "user_id = ? AND kind != 'api'", (principal.user_id,))
        elif principal.login is not None:
            count = _revoke(conn, "login = ?", (principal.login,))
        else:
            count = _revoke(conn, "digest = ?", (principal.credential,))
        audit.record(conn, audit.Actor.of(principal, address), "logout.everywhere" if everywhere else "logout")
    return count


def _revoke(conn: sqlite3.Connection, where: str, params: tuple[object, ...]) -> int:
    cur = conn.execute(f"UPDATE credentials SET revoked = ? WHERE revoked IS NULL AND {where}", (time.time(), *params))
    return cur.rowcount


def create_api_token(
    conn: sqlite3.Connection, principal: Principal, address: str | None, name: str, days: int
) -> tuple[str, float]:
    token = new_token("dlt")
    now = time.time()
    expires = now + days * 86400.0
    with transaction(conn):
        conn.execute(
            "INSERT INTO credentials (digest, user_id, kind, name, created, last_used, expires, address) "
            "VALUES (?, ?, 'api', ?, ?, ?, ?, ?)",
            (token_digest(token), principal.user_id, name, now, now, expires, address),
        )
        audit.record(conn, audit.Actor.of(principal, address), "token.create", name, days=days)
    return token, expires
