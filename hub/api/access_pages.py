"""The dorm manager's pages: residents and their cards (issue, replace a lost card, suspend,
return, revoke, CSV upload), for the buildings of their scope. Rendered from hub/services/cards.py;
the buttons call /api/v1/cards with the page's CSRF token (hub/web/static/cards.js). The door
board (/doors) is drawn in the browser from /api/v1/doors/board/stream (hub/web/static/doors.js):
its first event is the whole board, so there is one way of drawing it, not a page and a patch."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from hub.api.deps import Conn, page_allow
from hub.api.pages import render
from hub.models import Principal
from hub.services import access_log, cards
from hub.web.i18n import STRINGS

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


# The words doors.js needs, in the page's language (the script has no table of its own): every
# door state, denial reason and alarm, and these.
BOARD_WORDS = [
    *(key for key in STRINGS if key.startswith(("door_", "reason_", "alarm_"))),
    *("last_swipe", "granted", "denied", "open_alarms", "no_doors", "acknowledge", "ack_note_prompt"),
    *("acknowledged_by", "stale_gates", "changes_behind", "stale_since", "list_version", "live_reconnecting"),
    *("online", "offline", "no_door_alarms"),
]


@router.get("/doors", response_class=HTMLResponse)
def doors_page(request: Request, principal: Principal = page_allow("admin", "dorm_manager")) -> Response:
    return render(request, "doors.html", principal, words=BOARD_WORDS)
