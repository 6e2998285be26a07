"""The `media` command: dial the hub's WebSocket and send what a source yields (contract/media.py).

Each session runs in a thread of its own (the MQTT thread only starts it): it makes the source
(refused at once with the reason: unknown camera, nothing recorded), dials
`<hub.url>` + MEDIA_AGENT_PATH with the device token, replies `ok` on MQTT once the hub took the
socket, and sends each chunk as a binary message until the source ends (then a MediaNotice
`ended`), the source fails (a notice `failed` with the reason) or the hub closes the socket (the
last viewer left): then the source is closed, and with it the camera connection. Nothing is sent
before a command asks, and nothing after the socket closes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping

from pydantic import ValidationError
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from contract import Command, Reply
from contract.media import MEDIA_AGENT_PATH, MediaKind, MediaNotice, MediaRequest
from edge_agent.comms.hub_auth import HubNotConfigured, hub_credentials
from edge_agent.config.schema import HubLinkConfig
from edge_agent.media.source import MediaSource, MediaUnavailable, SourceFactory

log = logging.getLogger(__name__)

DIAL_TIMEOUT_SECONDS = 10.0
MAX_SESSIONS = 8  # concurrent streams a box serves; the hub already shares one per (camera, stream)


class MediaChannel:
    """The `media` commands of one agent. `reply` sends a Reply (the agent's OutboxWriter.reply)."""

    def __init__(
        self,
        hub: HubLinkConfig,
        sources: Mapping[MediaKind, SourceFactory],
        reply: Callable[[Reply], object],
        stop: threading.Event,
    ) -> None:
        self.hub, self.sources, self.reply, self.stop = hub, sources, reply, stop
        self._lock = threading.Lock()
        self._running: dict[str, threading.Thread] = {}

    def handle(self, command: Command) -> None:
        try:
            request = MediaRequest.model_validate(command.args, strict=True)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            self._fail(command.id, f"bad media command: {problem}")
            return
        with self._lock:
            if request.session in self._running:
                return  # sent again after a reconnect while it streams
            if len(self._running) >= MAX_SESSIONS:
                self._fail(command.id, f"this box streams {MAX_SESSIONS} sessions already")
                return
            thread = threading.Thread(
                target=self._run, args=(command.id, request), name=f"media-{request.session[:8]}", daemon=True
            )
            self._running[request.session] = thread
            thread.start()

    def join(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            running = list(self._running.values())
        for thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, command_id: str, request: MediaRequest) -> None:
        try:
            self._stream(command_id, request)
        except Exception as exc:  # never kill the agent: say why on MQTT
            log.exception("media %s failed", request.session)
            self._fail(command_id, f"the box could not stream: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._running.pop(request.session, None)

    def _stream(self, command_id: str, request: MediaRequest) -> None:
        factory = self.sources.get(request.kind)
        if factory is None:
            self._fail(command_id, f"this box does not serve {request.kind} media")
            return
        try:
            base, token = hub_credentials(self.hub)
            source = factory(request)
        except (HubNotConfigured, MediaUnavailable) as exc:
            self._fail(command_id, str(exc))
            return
        try:
            socket = self._dial(base, token, request.session)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            source.close()
            detail = f"HTTP {exc.response.status_code}" if isinstance(exc, InvalidStatus) else str(exc)
            self._fail(command_id, f"cannot open the media channel to the hub: {detail}")
            return
        self._send(Reply(id=command_id, ok=True, time=time.time(), result={"session": request.session}))
        log.info(
            "media %s: %s of camera %s (%s) to the hub",
            request.session[:8],
            request.kind,
            request.camera,
            request.stream,
        )
        with socket:
            self._pump(source, socket, request.session)

    def _dial(self, base: str, token: str, session: str) -> ClientConnection:
        url = "ws" + base.removeprefix("http") + MEDIA_AGENT_PATH.format(session=session)
        return connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=DIAL_TIMEOUT_SECONDS,
            max_size=1 << 20,  # the hub sends nothing but close frames
            compression=None,  # H.264 does not compress; deflate only costs the box CPU
        )

    def _pump(self, source: MediaSource, socket: ClientConnection, session: str) -> None:
        sent = 0
        try:
            ended = False
            for item in source:
                if self.stop.is_set():
                    self._notice(socket, MediaNotice(session=session, state="ended", error="the box is stopping"))
                    return
                if isinstance(item, MediaNotice):
                    socket.send(item.model_copy(update={"session": session}).model_dump_json())
                    ended = item.state != "started"
                else:
                    socket.send(item)
                    sent += len(item)
            if not ended:
                self._notice(socket, MediaNotice(session=session, state="ended"))
        except MediaUnavailable as exc:
            log.warning("media %s: %s", session[:8], exc)
            self._notice(socket, MediaNotice(session=session, state="failed", error=str(exc)[:2000]))
        except ConnectionClosed:
            pass  # the hub closed it: nobody watches any more
        finally:
            source.close()
            log.info("media %s: stopped after %d bytes", session[:8], sent)

    @staticmethod
    def _notice(socket: ClientConnection, notice: MediaNotice) -> None:
        with contextlib.suppress(ConnectionClosed):
            socket.send(notice.model_dump_json())

    def _fail(self, command_id: str, error: str) -> None:
        log.warning("media command %s: %s", command_id[:8], error)
        self._send(Reply(id=command_id, ok=False, time=time.time(), error=error[:2000]))

    def _send(self, reply: Reply) -> None:
        try:
            self.reply(reply)
        except Exception:
            log.exception("media %s: could not queue the reply", reply.id[:8])
