"""The hub's web application: API routers, pages, static files, security headers, error handling.

`create_app(config)` is all there is: `diaolou-hub run` serves it beside ingest, tests call it
with a real hub.db. It refuses to build if any route lacks its permission (api/deps.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub import __version__, commands_out
from hub.api import access_pages, incident_pages, live_pages, pages, playback_pages
from hub.api.deps import LoginRedirect, Policy, policy_of
from hub.api.routes import (
    alerts,
    audit,
    auth,
    cameras,
    cards,
    clips,
    devices,
    doors,
    incidents,
    media,
    notifications,
    open311,
    police,
    timeline,
    users,
    webhooks,
)
from hub.config import HubConfig
from hub.media.sessions import MediaHub
from hub.services.accounts import LoginPolicy
from hub.services.open311 import Open311Error
from hub.store import open_store

log = logging.getLogger("diaolou.hub.web")
# Every router the app serves: create_app includes exactly these, and checks each route's policy.
ROUTERS: list[APIRouter] = [
    auth.router,
    cameras.router,
    alerts.router,
    devices.router,
    users.router,
    audit.router,
    notifications.router,
    clips.router,
    timeline.router,
    cards.router,
    doors.router,
    access_pages.router,
    media.router,
    live_pages.router,
    incidents.router,
    incident_pages.router,
    open311.router,
    police.router,
    webhooks.router,
    playback_pages.router,
    pages.router,
]
WEB_DIR = Path(__file__).resolve().parent.parent / "web"

# No inline script or style anywhere: the policy forbids them, so an injected <script> cannot run.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        b"media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        b"form-action 'self'; frame-ancestors 'none'",
    ),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the headers above to every response, errors and static files included."""

    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        self.headers = list(SECURITY_HEADERS)
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in self.headers if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def create_app(config: HubConfig) -> FastAPI:
    open_store(config.db_path)
    app = FastAPI(
        # /docs is the hub's own page (api/pages.py) with Swagger UI shipped in the package.
        docs_url=None,
        redoc_url=None,
        title="Diaolou hub",
        version=__version__,
        description="Cameras, alerts, devices, users and the audit log of a Diaolou hub. Every route under "
        "/api/v1/ except auth/login needs a session cookie or `Authorization: Bearer <token>`.",
    )
    app.state.db_path = config.db_path
    app.state.data_dir = config.data_dir
    app.state.config = config
    app.state.media = MediaHub(config.db_path, commands_out.wake)
    web = config.web
    app.state.secure_cookies = web.secure_cookies == "always" or web.tls_cert_file is not None
    app.state.login_policy = LoginPolicy(
        max_failures_per_account=web.login_max_failures_per_account,
        max_failures_per_address=web.login_max_failures_per_address,
        window_seconds=web.login_window_minutes * 60,
        session_seconds=web.session_days * 86400,
    )
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")

    @app.exception_handler(LoginRedirect)
    async def to_login(request: Request, exc: LoginRedirect) -> Response:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if _wants_html(request):
            return pages.error_page(request, exc.status_code, str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Open311Error)
    async def open311_error(request: Request, exc: Open311Error) -> Response:
        # The GeoReport v2 error shape: a list of {code, description}.
        return JSONResponse([{"code": exc.status, "description": exc.description}], status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "request"
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the hub's log has the details"}, status_code=500)

    unguarded = [path for (_, path), policy in route_policies().items() if policy is None]
    unguarded += [
        route.path
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIWebSocketRoute) and policy_of(route) is None
    ]
    if unguarded:
        raise RuntimeError(f"routes without a permission (hub/api/deps.py): {unguarded}")
    app.add_middleware(SecurityHeaders, hsts=web.tls_cert_file is not None)
    return app


def route_policies() -> dict[tuple[str, str], Policy | None]:
    """(method, path) -> Policy of every route the app serves, for the start-up check and the
    authorisation matrix."""
    out = {}
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                for method in route.methods or ():
                    out[(method, route.path)] = policy_of(route)
    return out
