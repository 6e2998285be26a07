"""The dorm manager's pages: residents and their cards (issue, replace a lost card, suspend,
return, revoke, CSV upload), for the buildings of their scope. Rendered from hub/services/cards.py;
the buttons call /api/v1/cards with the page's CSRF token (hub/web/static/cards.js)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from hub.api.deps import Conn, page_allow
from hub.api.pages import render
from hub.models import Principal
from hub.services import access_log, cards

router = APIRouter(include_in_schema=False)


@router.get("/cards", response_class=HTMLResponse)
def cards_page(
    request: Request,
    conn: Conn,
    building: str | None = Query(None, max_length=64),
    q: str | None = Query(None, max_length=100),
    principal: Principal = page_allow("admin", "dorm_manager"),
) -> Response:
    return render(
        request,
        "cards.html",
        principal,
        residents=cards.residents(conn, principal, building or None, q or None),
        buildings=cards.buildings(conn, principal) or sorted(principal.buildings),
        gates=cards.gate_lists(conn, principal),
        log=access_log.recent(conn, principal, building or None, limit=50),
        building=building or "",
        q=q or "",
    )
