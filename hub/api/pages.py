"""Server-rendered pages for phones: sign in, camera grid, alert feed, one alert, devices, users, audit.

The pages are HTML from the same services the API uses, with a little script (hub/web/static)
for what must happen without a reload: new alerts, sign-in, admin actions. No inline script
(the Content-Security-Policy forbids it): a page passes data to its script in data- attributes
and the CSRF token in a <meta>.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from hub.api.deps import Conn, page_allow, page_signed_in, public
from hub.models import PRIORITIES, Principal
from hub.services import accounts, alerts, audit, incidents, intake, open311
from hub.web.i18n import LANGS, Lang, translate
from hub.web.nav import nav_for

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "web" / "templates")
templates.env.globals["nav_for"] = nav_for
LANG_COOKIE = "diaolou_lang"


def _lang(request: Request, principal: Principal | None) -> Lang:
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if asked in LANGS:
        return asked
    return principal.locale if principal is not None else "zh"


def _iso(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def render(request: Request, name: str, principal: Principal | None, status: int = 200, **context: Any) -> HTMLResponse:
    lang = _lang(request, principal)

    def t(key: str) -> str:
        return translate(lang, key)

    response = templates.TemplateResponse(
        request,
        name,
        {"t": t, "lang": lang, "me": principal, "iso": _iso, "csrf": principal.csrf if principal else "", **context},
        status_code=status,
    )
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True)
    return response


def error_page(request: Request, status: int, detail: str) -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    key = {404: "not_found", 403: "forbidden"}.get(status, "error")
    return render(request, "error.html", principal, status=status, message_key=key, detail=detail)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, _: None = public()) -> Response:
    return render(request, "login.html", None, next=request.query_params.get("next", "/"))


# Swagger UI sets styles inline; its page alone allows that (scripts stay 'self' only).
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request, _: None = public()) -> Response:
    """The API reference (OpenAPI at /openapi.json), served from the package: no CDN."""
    response = templates.TemplateResponse(request, "docs.html", {})
    response.headers["content-security-policy"] = DOCS_CSP
    return response


@router.get("/healthz")
def healthz(_: None = public()) -> dict[str, str]:
    return {"status": "ok"}


@router.get("/", response_class=HTMLResponse)
def camera_grid(request: Request, conn: Conn, principal: Principal = page_signed_in()) -> Response:
    return render(request, "cameras.html", principal, cameras=alerts.list_cameras(conn, principal))


@router.get("/cameras/{camera_id}", response_class=HTMLResponse)
def camera_page(camera_id: str, request: Request, conn: Conn, principal: Principal = page_signed_in()) -> Response:
    """One camera: its latest snapshot, state and recent alerts (404 if not the caller's to see)."""
    camera = alerts.get_camera(conn, principal, camera_id)
    if camera is None:
        return error_page(request, 404, "no such camera")
    recent = alerts.feed(conn, principal, camera=camera.id, limit=10)
    return render(request, "camera.html", principal, camera=camera, page=recent)


@router.get("/alerts", response_class=HTMLResponse)
def alert_feed(
    request: Request,
    conn: Conn,
    camera: str | None = Query(None, max_length=200),
    zone: str | None = Query(None, max_length=64),
    since: datetime | None = Query(None),
    until: datetime | None = Query(None),
    before: str | None = Query(None, max_length=64),
    principal: Principal = page_signed_in(),
) -> Response:
    page = alerts.feed(
        conn,
        principal,
        camera or None,
        zone or None,
        since.timestamp() if since else None,
        until.timestamp() if until else None,
        before,
    )
    return render(
        request,
        "alerts.html",
        principal,
        page=page,
        cameras=alerts.list_cameras(conn, principal),
        camera=camera or "",
        zone=zone or "",
        since=since.strftime("%Y-%m-%dT%H:%M") if since else "",
        until=until.strftime("%Y-%m-%dT%H:%M") if until else "",
        live=before is None and until is None,
    )


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(alert_id: str, request: Request, conn: Conn, principal: Principal = page_signed_in()) -> Response:
    alert = alerts.get_alert(conn, principal, alert_id)
    if alert is None:
        return error_page(request, 404, "no such alert")
    may_raise = principal.role in intake.RAISE_ROLES
    return render(
        request, "alert.html", principal, alert=alert, may_raise=may_raise,
        incident=incidents.incident_of_alert(conn, alert.id) if may_raise else None,
        categories=[code for code, *_ in open311.SERVICES], priorities=PRIORITIES,
        suggested=intake.SUGGESTED_CATEGORY.get(alert.kind, "public_report"),
    )  # fmt: skip


@router.get("/devices", response_class=HTMLResponse)
def devices_page(request: Request, conn: Conn, principal: Principal = page_allow("admin")) -> Response:
    return render(request, "devices.html", principal, devices=alerts.list_devices(conn), now=time.time())


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, conn: Conn, principal: Principal = page_allow("admin")) -> Response:
    return render(request, "users.html", principal, users=accounts.list_users(conn))


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    conn: Conn,
    who: str | None = Query(None, max_length=64),
    action: str | None = Query(None, max_length=64),
    before: int | None = Query(None, ge=1, le=2**63 - 1),
    principal: Principal = page_allow("admin"),
) -> Response:
    page = audit.search(conn, who or None, action or None, before=before)
    return render(
        request, "audit.html", principal, page=page, check=audit.verify(conn), who=who or "", action=action or ""
    )
