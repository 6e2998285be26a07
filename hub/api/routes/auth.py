"""Sign in and out, who am I, API tokens."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from hub.api.deps import SESSION_COOKIE, Conn, allow, client_address, public, signed_in
from hub.models import ApiTokenCreate, ApiTokenCreated, LoginRequest, LoginResponse, Principal, User
from hub.services import accounts

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/login", response_model=LoginResponse)
def login(body: LoginRequest, request: Request, response: Response, conn: Conn, _: None = public()) -> LoginResponse:
    """Sets the session cookie (for the browser) and returns a bearer token (for API clients)."""
    policy = request.app.state.login_policy
    try:
        done = accounts.login(conn, body.username, body.password, client_address(request), policy)
    except accounts.LoginRefused as exc:
        raise HTTPException(exc.status, exc.reason) from None
    response.set_cookie(
        SESSION_COOKIE,
        done.session,
        max_age=int(policy.session_seconds),
        httponly=True,
        secure=request.app.state.secure_cookies,
        samesite="lax",
        path="/",
    )
    user = accounts.get_user(conn, done.principal.username)
    return LoginResponse(token=done.bearer, expires=done.expires, user=user)


@router.post("/logout", status_code=204)
def logout(request: Request, response: Response, conn: Conn, principal: Principal = signed_in()) -> None:
    accounts.logout(conn, principal, client_address(request))
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.post("/logout-everywhere", status_code=204)
def logout_everywhere(request: Request, response: Response, conn: Conn, principal: Principal = signed_in()) -> None:
    """Revokes every session and bearer token of the caller, on every phone and browser."""
    accounts.logout(conn, principal, client_address(request), everywhere=True)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=User)
def me(conn: Conn, principal: Principal = signed_in()) -> User:
    return accounts.get_user(conn, principal.username)


@router.get("/csrf")
def csrf(principal: Principal = signed_in()) -> dict[str, str | None]:
    """The CSRF token a page's script sends back in X-CSRF-Token on requests that change something."""
    return {"csrf": principal.csrf}


@router.post("/tokens", response_model=ApiTokenCreated, status_code=201)
def create_token(
    body: ApiTokenCreate, request: Request, conn: Conn, principal: Principal = allow("admin", "police")
) -> ApiTokenCreated:
    """An API token for an integration (a police system, a script), shown once, stored hashed."""
    token, expires = accounts.create_api_token(conn, principal, client_address(request), body.name, body.days)
    return ApiTokenCreated(token=token, name=body.name, expires=expires)
