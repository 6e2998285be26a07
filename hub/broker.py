"""The embedded MQTT broker: amqtt running in a background thread of the hub process.

It exists so one box (and the README's demo) runs hub + broker with one command. It is not the
production broker: amqtt speaks MQTT 3.1.1 only, keeps sessions and queued messages in memory
(a hub restart loses what the broker held), has no per-device ACLs and no TLS as configured here.
Production runs Mosquitto (persistence on disk, per-device credentials and ACLs, TLS) and
leaves `embedded_broker.enabled` off.

Authentication is `LoopbackAuthPlugin` instead of amqtt's AnonymousAuthPlugin for two reasons:
anonymous clients are accepted from this machine only (by default), and amqtt discards the
queued messages and the session of every client its AnonymousAuthPlugin lets in
(`session.is_anonymous`), which would make the hub's persistent session useless. This plugin
never marks a session anonymous, so clean_session=false sessions keep their queued QoS 1 messages
while the client is away.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker  # type: ignore[import-untyped]
from amqtt.plugins.base import BaseAuthPlugin  # type: ignore[import-untyped]

from common.net import is_loopback
from hub.config import EmbeddedBrokerConfig
from hub.security import hash_password as hash_password  # re-exported: `user:hash` lines of password_file
from hub.security import verify_password

log = logging.getLogger("diaolou.hub.broker")


class BrokerStartError(RuntimeError):
    pass


def _read_password_file(path: Path) -> dict[str, str]:
    users: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            user, sep, digest = line.partition(":")
            if not sep or not user or not digest:
                raise ValueError(f"{path}: expected user:hash lines")
            users[user] = digest
    return users


class LoopbackAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Accept anonymous clients per `anonymous` (loopback/any/never); a client that sends a user
    name is checked against the password file when there is one."""

    @dataclass
    class Config:
        anonymous: str = "loopback"
        password_file: str | None = None

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._users: dict[str, str] = {}
        if self.config.password_file:
            self._users = _read_password_file(Path(self.config.password_file))

    async def authenticate(self, *, session: Any) -> bool:
        if session.username and self._users:
            digest = self._users.get(session.username)
            ok = digest is not None and verify_password(session.password or "", digest)
            if not ok:
                log.warning("embedded broker: wrong user name or password from %s", session.remote_address)
            return bool(ok)
        mode = self.config.anonymous
        if mode == "any" or (mode == "loopback" and is_loopback(str(session.remote_address))):
            return True
        log.warning("embedded broker: refused an anonymous client from %s", session.remote_address)
        return False


class EmbeddedBroker:
    """amqtt's Broker on its own asyncio loop in a daemon thread: the hub's other threads stay plain
    threads, and stopping the hub stops the broker."""

    def __init__(self, config: EmbeddedBrokerConfig, session_expiry_seconds: int | None = None) -> None:
        self.config = config
        self.session_expiry_seconds = session_expiry_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def amqtt_config(self) -> dict[str, Any]:
        plugin: dict[str, Any] = {"anonymous": self.config.anonymous}
        if self.config.password_file is not None:
            plugin["password_file"] = str(self.config.password_file)
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.config.host}:{self.config.port}"}},
            # Only our auth plugin: no $SYS publisher (it needs psutil and wakes up every few seconds).
            "plugins": {f"{__name__}.LoopbackAuthPlugin": plugin},
            # Disconnected persistent sessions are dropped after this long (amqtt keeps them forever otherwise).
            "session_expiry_interval": self.session_expiry_seconds,
        }

    def start(self, timeout: float = 15.0) -> None:
        if self.config.password_file is not None:
            try:
                _read_password_file(self.config.password_file)
            except (OSError, ValueError) as exc:
                raise BrokerStartError(f"embedded broker: cannot read the password file: {exc}") from None
        self._thread = threading.Thread(target=self._run, name="diaolou-hub-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise BrokerStartError(f"embedded broker did not start within {timeout:.0f} s")
        if self._error is not None:
            raise BrokerStartError(
                f"embedded broker cannot listen on {self.config.host}:{self.config.port}: {self._error}"
            )
        log.info("embedded MQTT broker (amqtt, MQTT 3.1.1) on %s:%d", self.config.host, self.config.port)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            broker = loop.run_until_complete(self._create_and_start())
        except BaseException as exc:
            self._error = exc.__cause__ or exc  # amqtt wraps the OSError (address in use) in BrokerError
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(asyncio.wait_for(broker.shutdown(), 10))
            except Exception:
                log.exception("embedded broker did not shut down cleanly")
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _create_and_start(self) -> Any:
        broker = Broker(self.amqtt_config())  # created inside the loop: amqtt binds to the running loop
        await broker.start()
        return broker

    def stop(self, timeout: float = 15.0) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        log.info("embedded MQTT broker stopped")
