"""Who may call what: every route's permission, in one place.

Each route states its policy in its signature with exactly one of `public()`, `signed_in()`,
`allow(*roles)` or `device()` (a box with its own HTTP credential: clip uploads) (pages: the
`page_*` twins, which send a stranger to the sign-in page instead of answering 401).
`create_app` refuses to start if any route lacks one, and the authorisation test builds its
matrix from these policies, so a new route cannot forget its rule.

Object-level checks (`visible_camera`, and the services' own filters) answer 404 for what the
caller may not see, exactly as for what does not exist: a shop owner cannot even learn that a
neighbour's camera id is real.

Credentials: a browser sends the session cookie (HttpOnly, SameSite=Lax) and, on every request
that changes something, the CSRF token the page was given (header X-CSRF-Token). An API client
sends `Authorization: Bearer <token>` (the login's token, or an API token) and needs no CSRF
token, since a browser never attaches that header on its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, HTTPException, Path, Request, WebSocket, WebSocketException
from fastapi.routing import APIRoute, APIWebSocketRoute

from contract.messages import INT64_MAX
from hub.models import ROLES, Camera, Principal, Role
from hub.security import same_secret
from hub.services import accounts, alerts, clips, open311
from hub.services.audit import Actor
from hub.services.clips import DeviceCaller
from hub.store import connect

SESSION_COOKIE = "diaolou_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class LoginRedirect(Exception):
    """A page asked by someone not signed in: app.py turns this into a redirect to /login."""


@dataclass(frozen=True)
class Policy:
    roles: frozenset[Role] | None  # None: anyone signed in; see `public`
    public: bool = False
    page: bool = False
    device: bool = False  # a box with its HTTP credential, no person (roles is then empty)
    open311: bool = False  # an Open311 client with its api_key, no person (roles is then empty)


def get_conn(request: Request) -> Iterator[sqlite3.Connection]:
    conn = connect(request.app.state.db_path)
    try:
        yield conn
    finally:
        conn.close()


Conn = Annotated[sqlite3.Connection, Depends(get_conn)]
# Every row id in a path: SQLite integers are 64-bit, so a larger number is simply no such row
# (422 naming the parameter), never an OverflowError out of sqlite3.
RowId = Annotated[int, Path(ge=1, le=INT64_MAX)]


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "?"


def _principal(request: Request, conn: sqlite3.Connection) -> Principal | None:
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "the Authorization header must be `Bearer <token>`")
        return accounts.authenticate(conn, token.strip(), "bearer")
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    principal = accounts.authenticate(conn, cookie, "session")
    unsafe = request.method not in _SAFE_METHODS
    if principal is not None and unsafe and not same_secret(request.headers.get(CSRF_HEADER), principal.csrf):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page and try again")
    return principal


def _make(policy: Policy) -> Callable[..., Any]:
    def dependency(request: Request, conn: Conn) -> Principal | None:
        if policy.public:
            return None
        principal = _principal(request, conn)
        if principal is None:
            if policy.page:
                raise LoginRedirect()
            raise HTTPException(401, "sign in first (session cookie or Authorization: Bearer <token>)")
        if policy.roles is not None and principal.role not in policy.roles:
            raise HTTPException(403, f"a {principal.role} may not do this")
        request.state.principal = principal
        return principal

    dependency.policy = policy  # type: ignore[attr-defined]
    return dependency


def public() -> Any:
    return Depends(_make(Policy(roles=None, public=True)))


def signed_in() -> Any:
    return Depends(_make(Policy(roles=None)))


def allow(*roles: Role) -> Any:
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"allow() needs roles from {ROLES}, got {roles}")
    return Depends(_make(Policy(roles=frozenset(roles))))


def _device_dependency(request: Request, conn: Conn) -> DeviceCaller:
    """A box calling with its credential (`diaolou-hub devices token`): 401 without one, 403 for a
    person's credential (people never upload clips)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "a box sends `Authorization: Bearer <device token>` (diaolou-hub devices token)")
    caller = clips.authenticate_device(conn, token.strip())
    if caller is None:
        if accounts.authenticate(conn, token.strip(), "bearer") is not None:
            raise HTTPException(403, "only a box may do this, with its device token")
        raise HTTPException(401, "unknown or replaced device token")
    return caller


_device_dependency.policy = Policy(roles=frozenset(), device=True)  # type: ignore[attr-defined]


def device() -> Any:
    return Depends(_device_dependency)


async def _open311_dependency(request: Request, conn: Conn) -> str:
    """An Open311 client: `api_key` in the query or, for a POST, in the form body (the spec's
    place for it). Anything else, a person's token included, is the spec's 403."""
    key = request.query_params.get("api_key")
    if key is None and request.method == "POST":
        body = (await request.body()).decode("utf-8", "replace")
        key = next((v for k, v in parse_qsl(body, max_num_fields=100) if k == "api_key"), None)
    return open311.key_name(conn, key)


_open311_dependency.policy = Policy(roles=frozenset(), open311=True)  # type: ignore[attr-defined]


def open311_key() -> Any:
    return Depends(_open311_dependency)


def page_signed_in() -> Any:
    return Depends(_make(Policy(roles=None, page=True)))


def page_allow(*roles: Role) -> Any:
    return Depends(_make(Policy(roles=frozenset(roles), page=True)))


# --- WebSockets (the media channel): refused at the handshake (403) without the right credential --
_POLICY_VIOLATION = 1008


def _socket_secret(websocket: WebSocket) -> tuple[str, str] | None:
    header = websocket.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        return (token.strip(), "bearer") if scheme.lower() == "bearer" and token.strip() else None
    cookie = websocket.cookies.get(SESSION_COOKIE)
    return (cookie, "session") if cookie else None


def _socket_viewer(websocket: WebSocket) -> Principal:
    """A person watching: session cookie (same origin only: another site's page cannot open a
    socket with the viewer's cookie) or a bearer token."""
    origin = websocket.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != websocket.headers.get("host"):
        raise WebSocketException(_POLICY_VIOLATION, "cross-origin WebSocket refused")
    secret = _socket_secret(websocket)
    conn = connect(websocket.app.state.db_path)
    try:
        principal = None if secret is None else accounts.authenticate(conn, *secret)
    finally:
        conn.close()
    if principal is None:
        raise WebSocketException(_POLICY_VIOLATION, "sign in first")
    return principal


def _socket_device(websocket: WebSocket) -> DeviceCaller:
    """A box dialling the media channel with its device token."""
    secret = _socket_secret(websocket)
    conn = connect(websocket.app.state.db_path)
    try:
        caller = None if secret is None or secret[1] != "bearer" else clips.authenticate_device(conn, secret[0])
    finally:
        conn.close()
    if caller is None:
        raise WebSocketException(_POLICY_VIOLATION, "unknown or replaced device token")
    return caller


_socket_viewer.policy = Policy(roles=None)  # type: ignore[attr-defined]
_socket_device.policy = Policy(roles=frozenset(), device=True)  # type: ignore[attr-defined]


def socket_signed_in() -> Any:
    return Depends(_socket_viewer)


def socket_device() -> Any:
    return Depends(_socket_device)


def policy_of(route: APIRoute | APIWebSocketRoute) -> Policy | None:
    """The policy a route declared (exactly one), or None."""
    found = [getattr(dep.call, "policy", None) for dep in route.dependant.dependencies if hasattr(dep.call, "policy")]
    return found[0] if len(found) == 1 else None


def actor(request: Request, principal: Principal) -> Actor:
    return Actor.of(principal, client_address(request))


def visible_camera(conn: sqlite3.Connection, principal: Principal, cid: str) -> Camera:
    camera = alerts.get_camera(conn, principal, cid)
    if camera is None:
        raise HTTPException(404, f"no camera {cid[:80]!r}")
    return camera
