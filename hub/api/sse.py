"""Server-sent events: the one way the hub's pages update live (the alert feed, the door board).

A stream polls hub.db every STREAM_POLL_SECONDS on a connection of its own (one for the stream's
life, not one per poll: a viewer polls twice a second) and sends what `poll` says is new since the
cursor it returned last time. Polling the database, rather than listening to ingest's fan-out,
keeps the stream right whoever changed the data: ingest, another hub worker, a person's
acknowledgement, the CLI. A comment line every STREAM_KEEPALIVE_SECONDS of silence keeps proxies
from closing an idle stream; the browser's EventSource reconnects by itself (`retry`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from hub.store import connect

STREAM_POLL_SECONDS = 0.5
STREAM_KEEPALIVE_SECONDS = 15.0
C = TypeVar("C")
# (event name, JSON data) items new since the cursor, and the next cursor.
Poll = Callable[[sqlite3.Connection, C], tuple[list[tuple[str, str]], C]]


def event_stream(request: Request, poll: Poll[C], cursor: C) -> StreamingResponse:
    conn = connect(request.app.state.db_path)

    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in _events(request, conn, poll, cursor):
                yield chunk
        finally:
            conn.close()

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def _events(request: Request, conn: sqlite3.Connection, poll: Poll[C], cursor: C) -> AsyncIterator[str]:
    idle = 0.0
    yield "retry: 2000\n\n"
    while not await request.is_disconnected():
        items, cursor = await run_in_threadpool(poll, conn, cursor)
        for name, data in items:
            yield f"event: {name}\ndata: {data}\n\n"
        idle = 0.0 if items else idle + STREAM_POLL_SECONDS
        if idle >= STREAM_KEEPALIVE_SECONDS:
            yield ": keepalive\n\n"
            idle = 0.0
        await asyncio.sleep(STREAM_POLL_SECONDS)
