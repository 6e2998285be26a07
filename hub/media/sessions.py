"""Media sessions: one upstream per (camera, stream), shared by all its viewers.

The first viewer of a camera's stream makes a session: a `media` command (contract/media.py) is
stored for the box with a short `expires` and the command sender is woken, so it goes out at once.
The box dials MEDIA_AGENT_PATH with the session id; `attach` accepts only the device the session
was asked of. Every binary message the box sends is offered to each viewer's bounded queue: a
viewer that falls behind (a slow phone) loses what is queued and skips to the next fragment that
starts with a keyframe, so it never holds back the others or the box. A viewer who joins late gets
the init segment and the fragments since the last keyframe, so its picture starts at once.

When the last viewer leaves, the upstream lingers `linger` seconds (a page reload, a tap from the
grid to the camera) and is then closed: the box stops sending; nothing flows while nobody watches.
Everything here runs on the web server's event loop; only the database calls go to a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from contract import Command
from contract.media import MEDIA_COMMAND, MediaFormat, MediaKind, MediaNotice, MediaRequest, StreamName
from hub.media import fmp4
from hub.store import connect, transaction

log = logging.getLogger("diaolou.hub.media")

COMMAND_EXPIRES_SECONDS = 10.0  # a live view asked of a box that is gone is not worth sending later
DIAL_TIMEOUT_SECONDS = 15.0  # from the command to the box's socket: MQTT round trip + RTSP open
LINGER_SECONDS = 5.0  # the upstream outlives its last viewer this long (well within the 10 s goal)
VIEWER_QUEUE_MESSAGES = 120  # a few seconds of per-frame fragments
VIEWER_QUEUE_BYTES = 8 << 20
GOP_CACHE_BYTES = 8 << 20  # fragments since the last keyframe, for late viewers


class LiveStatus(BaseModel):
    """A text message to a viewer: what the stream is doing, in words the page can show."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: Literal["waiting", "playing", "ended", "failed", "offline"] = Field(description="The stream's state.")
    error: str | None = Field(None, description="Why it failed or ended, for the viewer.")
    time: float | None = Field(
        None, description="playing (playback): the recorded time of the first frame, epoch seconds UTC."
    )


@dataclass(frozen=True)
class StreamKey:
    site: str
    device: str
    camera: str
    stream: StreamName
    format: MediaFormat = "fmp4"
    # Playback: each viewer has its own session (its own time and speed); `private` keeps two
    # viewers of the same moment apart too.
    kind: MediaKind = "live"
    start: float | None = None
    speed: int = 1  # 1, 2 or 4 (the route checks)
    private: str | None = None


class Viewer:
    """One browser's queue: bytes (media) or LiveStatus; bounded, skipping to a keyframe when full."""

    def __init__(self, key: StreamKey, max_messages: int = VIEWER_QUEUE_MESSAGES) -> None:
        self.key = key
        self.queue: asyncio.Queue[bytes | LiveStatus] = asyncio.Queue(max_messages)
        self.queued_bytes = 0
        self.skipping = False  # dropped something: wait for a keyframe fragment
        self.dropped = 0
        self._init: bytes | None = None

    def offer(self, chunk: bytes, keyframe: bool, init: bool = False) -> None:
        if self.skipping and not keyframe:
            self.dropped += 1
            return
        self.skipping = False
        if self.queue.full() or self.queued_bytes + len(chunk) > VIEWER_QUEUE_BYTES:
            # Too far behind: what is queued is stale. The init segment and status messages stay
            # (a player cannot decode without the one), media goes.
            kept: list[bytes | LiveStatus] = []
            while not self.queue.empty():
                item = self.queue.get_nowait()
                if isinstance(item, LiveStatus) or item is self._init:
                    kept.append(item)
                    continue
                self.dropped += 1
                self.queued_bytes -= len(item)
            for item in kept:
                self.queue.put_nowait(item)
            if not keyframe:
                self.skipping = True
                self.dropped += 1
                return
        if init:
            self._init = chunk
        self.queue.put_nowait(chunk)
        self.queued_bytes += len(chunk)

    def tell(self, status: LiveStatus) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a full queue drains or is reset soon
            self.queue.put_nowait(status)

    async def next(self) -> bytes | LiveStatus:
        item = await self.queue.get()
        if isinstance(item, bytes):
            self.queued_bytes -= len(item)
        return item


@dataclass(eq=False)
class Upstream:
    key: StreamKey
    session: str
    viewers: set[Viewer] = field(default_factory=set)
    init: bytes | None = None
    gop: deque[bytes] = field(default_factory=deque)
    gop_bytes: int = 0
    socket: WebSocket | None = None
    closed: bool = False
    bytes_in: int = 0
    linger: asyncio.TimerHandle | None = None

    @property
    def started(self) -> bool:
        return self.init is not None or bool(self.gop)

    def publish(self, chunk: bytes) -> None:
        self.bytes_in += len(chunk)
        if self.key.format == "jpeg":  # every picture stands alone; a late viewer gets the last one
            if not self.gop:
                self.tell(LiveStatus(state="playing"))
            self.gop = deque([chunk])
            for viewer in self.viewers:
                viewer.offer(chunk, True)
            return
        if self.init is None:
            self.init = chunk
            for viewer in self.viewers:
                viewer.tell(LiveStatus(state="playing"))
                viewer.offer(chunk, True, init=True)
            return
        keyframe = fmp4.starts_with_keyframe(chunk)
        if keyframe:
            self.gop.clear()
            self.gop_bytes = 0
        if keyframe or self.gop:  # before the first keyframe a late viewer could not decode anyway
            self.gop.append(chunk)
            self.gop_bytes += len(chunk)
            while self.gop_bytes > GOP_CACHE_BYTES and len(self.gop) > 1:
                self.gop_bytes -= len(self.gop.popleft())
        for viewer in self.viewers:
            viewer.offer(chunk, keyframe)

    def tell(self, status: LiveStatus) -> None:
        for viewer in self.viewers:
            viewer.tell(status)


class MediaHub:
    """All media sessions of one hub. `wake` makes the command sender publish at once."""

    def __init__(
        self,
        db_path: Path,
        wake: Callable[[], None],
        linger: float = LINGER_SECONDS,
        dial_timeout: float = DIAL_TIMEOUT_SECONDS,
    ) -> None:
        self.db_path, self.wake, self.linger, self.dial_timeout = db_path, wake, linger, dial_timeout
        self.upstreams: dict[StreamKey, Upstream] = {}
        self.sessions: dict[str, Upstream] = {}

    # --- viewers ------------------------------------------------------------------------------
    async def join(self, key: StreamKey) -> Viewer:
        viewer = Viewer(key)
        upstream = self.upstreams.get(key)
        if upstream is not None and not upstream.closed:
            if upstream.linger is not None:
                upstream.linger.cancel()
                upstream.linger = None
            upstream.viewers.add(viewer)
            if not upstream.started:
                viewer.tell(LiveStatus(state="waiting"))
            else:
                viewer.tell(LiveStatus(state="playing"))
                if upstream.init is not None:
                    viewer.offer(upstream.init, True, init=True)
                for chunk in upstream.gop:
                    viewer.offer(chunk, False)
            return viewer
        online = await run_in_threadpool(self._device_online, key)
        if not online:
            viewer.tell(LiveStatus(state="offline", error="the box is offline"))
            return viewer
        upstream = Upstream(key, secrets.token_urlsafe(24))
        upstream.viewers.add(viewer)
        self.upstreams[key] = upstream
        self.sessions[upstream.session] = upstream
        viewer.tell(LiveStatus(state="waiting"))
        await run_in_threadpool(self._ask, upstream)
        self.wake()
        asyncio.get_running_loop().create_task(self._await_dial(upstream))
        return viewer

    def leave(self, viewer: Viewer) -> None:
        upstream = self.upstreams.get(viewer.key)
        if upstream is None or viewer not in upstream.viewers:
            return
        upstream.viewers.discard(viewer)
        if not upstream.viewers and upstream.linger is None:
            loop = asyncio.get_running_loop()
            upstream.linger = loop.call_later(self.linger, lambda: loop.create_task(self._idle(upstream)))

    async def _idle(self, upstream: Upstream) -> None:
        upstream.linger = None
        if not upstream.viewers:
            await self.close(upstream, "nobody watches")

    # --- the box's side -----------------------------------------------------------------------
    def claim(self, session: str, site: str, device: str) -> Upstream | None:
        """The session the box dials, if it was asked of this very device and is not taken."""
        upstream = self.sessions.get(session)
        if upstream is None or upstream.closed or upstream.socket is not None:
            return None
        if (upstream.key.site, upstream.key.device) != (site, device):
            return None
        return upstream

    async def serve(self, upstream: Upstream, socket: WebSocket) -> None:
        """Relay the box's messages to the viewers until either side closes."""
        upstream.socket = socket
        ended = LiveStatus(state="ended", error="the box closed the stream")
        try:
            while not upstream.closed:
                message = await socket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data, text = message.get("bytes"), message.get("text")
                if data is not None:
                    if upstream.key.format == "fmp4" and upstream.init is None and not fmp4.is_init(data):
                        ended = LiveStatus(state="failed", error="the box sent media before its init segment")
                        break
                    upstream.publish(data)
                elif text is not None:
                    ended = self._notice(upstream, text) or ended
        except WebSocketDisconnect:
            pass
        finally:
            if not upstream.closed:
                upstream.tell(ended)
            await self.close(upstream, ended.error or "ended")

    def _notice(self, upstream: Upstream, text: str) -> LiveStatus | None:
        try:
            notice = MediaNotice.model_validate(json.loads(text), strict=True)
        except (ValueError, ValidationError):
            log.warning("media %s: ignored a malformed notice from the box", upstream.session)
            return None
        if notice.state == "failed":
            return LiveStatus(state="failed", error=notice.error or "the box could not stream")
        if notice.state == "ended":
            return LiveStatus(state="ended", error=notice.error)
        if notice.time is not None:  # playback started: the viewers learn the recorded time of its first frame
            upstream.tell(LiveStatus(state="playing", time=notice.time))
        return None

    async def close(self, upstream: Upstream, why: str) -> None:
        if upstream.closed:
            return
        upstream.closed = True
        if self.upstreams.get(upstream.key) is upstream:
            del self.upstreams[upstream.key]
        self.sessions.pop(upstream.session, None)
        if upstream.linger is not None:
            upstream.linger.cancel()
        log.info("media %s (%s): closed, %d bytes relayed: %s", upstream.session, upstream.key, upstream.bytes_in, why)
        if upstream.socket is not None:
            with contextlib.suppress(Exception):  # gone already
                await upstream.socket.close(1000, why[:120])
        await run_in_threadpool(self._settle, upstream.session)

    async def _await_dial(self, upstream: Upstream) -> None:
        """Fail the session if the box neither dials nor answers within dial_timeout."""
        deadline = time.monotonic() + self.dial_timeout
        while not upstream.closed and upstream.socket is None:
            error = await run_in_threadpool(self._refusal, upstream)
            if error is not None or time.monotonic() > deadline:
                upstream.tell(LiveStatus(state="failed", error=error or "the box did not answer in time"))
                await self.close(upstream, error or "no answer")
                return
            await asyncio.sleep(0.25)

    # --- hub.db -------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        return connect(self.db_path)

    def _device_online(self, key: StreamKey) -> bool:
        conn = self._db()
        try:
            row = conn.execute("SELECT state FROM devices WHERE site = ? AND device = ?", (key.site, key.device))
            found = row.fetchone()
            return found is not None and found["state"] == "online"
        finally:
            conn.close()

    def _ask(self, upstream: Upstream) -> None:
        key, now = upstream.key, time.time()
        request = MediaRequest(
            session=upstream.session,
            camera=key.camera,
            kind=key.kind,
            stream=key.stream,
            start=key.start,
            speed=cast(Literal[1, 2, 4], key.speed),
            format=key.format,
        )
        command = Command(
            id=upstream.session, time=now, expires=now + COMMAND_EXPIRES_SECONDS, args=request.model_dump(mode="json")
        )
        conn = self._db()
        try:
            with transaction(conn):
                conn.execute(
                    "INSERT INTO commands (id, site, device, name, payload, created) VALUES (?, ?, ?, ?, ?, ?)",
                    (command.id, key.site, key.device, MEDIA_COMMAND, command.model_dump_json(), now),
                )
        finally:
            conn.close()

    def _refusal(self, upstream: Upstream) -> str | None:
        key, conn = upstream.key, self._db()
        try:
            row = conn.execute(
                "SELECT ok, error FROM replies WHERE site = ? AND device = ? AND id = ?",
                (key.site, key.device, upstream.session),
            ).fetchone()
            if row is None or row["ok"]:
                return None
            return str(row["error"] or "the box refused the stream")
        finally:
            conn.close()

    def _settle(self, session: str) -> None:
        """The session is over: its command is never sent again (after a reconnect, say)."""
        conn = self._db()
        try:
            with transaction(conn):
                conn.execute(
                    "UPDATE commands SET replied = ?, status = 'replied' WHERE id = ? AND replied IS NULL",
                    (time.time(), session),
                )
        except sqlite3.Error as exc:
            log.warning("media %s: could not settle its command: %s", session, exc)
        finally:
            conn.close()
