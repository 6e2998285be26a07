"""The outbound connector's dead-letter list, for admins: what could not be delivered, and replay."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from hub.api.deps import Conn, RowId, actor, allow
from hub.models import Principal
from hub.services import webhooks
from hub.services.webhooks import DeadLetter

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


class DeadLetterList(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    items: list[DeadLetter] = Field(description="Oldest first.")


@router.get("/dead", response_model=DeadLetterList)
def dead(conn: Conn, principal: Principal = allow("admin")) -> DeadLetterList:
    return DeadLetterList(items=webhooks.dead_letters(conn))


@router.post("/dead/{outbox_id}/replay", status_code=204)
def replay(outbox_id: RowId, request: Request, conn: Conn, principal: Principal = allow("admin")) -> None:
    """Queue it again; the deliverer sends it at once."""
    if not webhooks.replay(conn, actor(request, principal), outbox_id):
        raise HTTPException(404, f"no dead letter {outbox_id}")
