"""Users and roles (admins). The same service functions back `diaolou-hub users ...`."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from hub.api.deps import Conn, actor, allow
from hub.models import Principal, User, UserCreate, UserList
from hub.services import accounts

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("", response_model=UserList)
def list_users(conn: Conn, principal: Principal = allow("admin")) -> UserList:
    return UserList(items=accounts.list_users(conn))


@router.post("", response_model=User, status_code=201)
def add_user(body: UserCreate, request: Request, conn: Conn, principal: Principal = allow("admin")) -> User:
    try:
        return accounts.add_user(
            conn,
            actor(request, principal),
            body.username,
            body.password,
            body.role,
            list(body.cameras),
            list(body.sites),
            body.locale,
            list(body.buildings),
        )
    except accounts.AccountError as exc:
        raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from None


@router.delete("/{username}", status_code=204)
def remove_user(username: str, request: Request, conn: Conn, principal: Principal = allow("admin")) -> None:
    try:
        accounts.remove_user(conn, actor(request, principal), username)
    except accounts.AccountError as exc:
        raise HTTPException(404 if "no user" in str(exc) else 409, str(exc)) from None


@router.post("/{username}/unlock", status_code=204)
def unlock(username: str, request: Request, conn: Conn, principal: Principal = allow("admin")) -> None:
    """Lift a lock-out after repeated failed sign-ins."""
    try:
        accounts.unlock(conn, actor(request, principal), username)
    except accounts.AccountError as exc:
        raise HTTPException(404, str(exc)) from None
