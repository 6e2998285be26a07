"""The hub process: database, embedded broker (optional), MQTT ingest, the notifier, the sender of
commands to boxes and the web server, started
and stopped in the right order. `diaolou-hub run` is this with signal handling around it.

Start: the database first (migrations), then the broker (ingest needs it), then ingest, then the
web server (it reads what ingest writes). Stop: the reverse, and ingest commits and acknowledges
what it received before the broker goes.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import uvicorn

from hub.access_sync import ListSender
from hub.api.app import create_app
from hub.broker import BrokerStartError, EmbeddedBroker
from hub.checkpoint import checkpoints_for
from hub.commands_out import CommandSender
from hub.config import HubConfig
from hub.db import HubDB
from hub.ingest import Ingest
from hub.migrations import SchemaTooNew
from hub.notify.notifier import Notifier, NotifySettings
from hub.services.triage import Triage
from hub.services.webhooks import Deliverer
from hub.services.worker import GiveWay, PollingWorker

log = logging.getLogger("diaolou.hub")
WEB_START_TIMEOUT = 30.0


class HubStartError(RuntimeError):
    """A part that could not start; the message names it and why."""


@dataclass
class _Web:
    server: uvicorn.Server
    thread: threading.Thread


class HubServer:
    def __init__(self, config: HubConfig, quiet_broker: bool = True) -> None:
        self.config = config
        self.quiet_broker = quiet_broker
        self.db: HubDB | None = None
        self.broker: EmbeddedBroker | None = None
        self.ingest: Ingest | None = None
        self.notifier: Notifier | None = None
        self.triage: Triage | None = None
        self.webhooks: Deliverer | None = None
        self.commands: CommandSender | None = None
        self.lists: ListSender | None = None
        self.checkpoints: PollingWorker | None = None
        self._web: _Web | None = None

    def start(self) -> None:
        config = self.config
        try:
            self.db = HubDB(
                config.db_path, config.ingest.sqlite_synchronous, max_dead_letters=config.limits.max_dead_letters
            )
        except (OSError, ValueError, sqlite3.DatabaseError, SchemaTooNew) as exc:
            raise HubStartError(f"cannot open the hub database {config.db_path}: {exc}") from None
        try:
            if config.embedded_broker.enabled:
                if self.quiet_broker:
                    # amqtt logs every connection, and its state machine library every transition, at INFO.
                    for name in ("amqtt", "transitions"):
                        logging.getLogger(name).setLevel(logging.WARNING)
                self.broker = EmbeddedBroker(config.embedded_broker, config.mqtt.session_expiry_seconds)
                try:
                    self.broker.start()
                except BrokerStartError as exc:
                    raise HubStartError(str(exc)) from None
            self.checkpoints = checkpoints_for(self.db)
            self.checkpoints.start()
            self.ingest = Ingest(config, self.db)
            self.ingest.start()
            self.notifier = Notifier(config.db_path, NotifySettings.of(config.web), give_way=GiveWay(self.ingest.busy))
            self.notifier.start()
            # Rules propose incidents from new alerts (hub/services/triage.py).
            self.triage = Triage(config.db_path, GiveWay(self.ingest.busy))
            self.triage.start()
            # Incident changes to external registries, signed and retried (hub/services/webhooks.py).
            self.webhooks = Deliverer(config.db_path)
            self.webhooks.start()
            # Commands to boxes (clip requests) go out on ingest's own MQTT session: the hub's
            # account may publish to cmd/ topics, and a box that is offline gets them on return.
            self.commands = CommandSender(config.db_path, self._publish)
            self.commands.start()
            # Signed allow-lists to gate boxes, on the same session (the hub may write .../acl).
            self.lists = ListSender(config.db_path, config.data_dir, self._publish)
            self.lists.start()
            self._start_web()
            # Everything made while starting (the web app, its models, the modules) lives as long
            # as the process: freezing it keeps Python's full garbage collections from walking it
            # again and again. Measured during a burst of 20,000 events: full collections of
            # 50-170 ms each stalled ingest's writer; after the freeze, none over 30 ms.
            gc.collect()
            gc.freeze()
        except BaseException:
            self.stop()
            raise

    def _publish(self, topic: str, payload: bytes, qos: int) -> bool:
        ingest = self.ingest
        if ingest is None or not ingest.client.is_connected():
            return False
        return ingest.client.publish(topic, payload, qos).rc == mqtt.MQTT_ERR_SUCCESS

    def _start_web(self) -> None:
        web = self.config.web
        host, _, port = self.config.listen.rpartition(":")
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(self.config),
                host=host.strip("[]"),
                port=int(port),
                log_level="warning",
                access_log=False,
                ssl_certfile=str(web.tls_cert_file) if web.tls_cert_file else None,
                ssl_keyfile=str(web.tls_key_file) if web.tls_key_file else None,
                lifespan="off",
            )
        )
        # uvicorn installs signal handlers only on the main thread: this one is not, so SIGTERM
        # stays the hub's, which stops the web server in order.
        thread = threading.Thread(target=server.run, name="diaolou-hub-web", daemon=True)
        thread.start()
        self._web = _Web(server, thread)
        started = threading.Event()

        def wait() -> bool:
            return bool(server.started) or not thread.is_alive()

        for _ in range(int(WEB_START_TIMEOUT * 20)):
            if wait():
                break
            started.wait(0.05)
        if not server.started:
            raise HubStartError(
                f"the web server could not listen on {self.config.listen} (listen): is the port taken? "
                "See the log above."
            )
        scheme = "https" if web.tls_cert_file else "http"
        log.info("web UI and API on %s://%s/ (OpenAPI at /docs)", scheme, self.config.listen)

    def stop(self) -> None:
        if self._web is not None:
            self._web.server.should_exit = True
            self._web.thread.join(10)
            self._web = None
        if self.commands is not None:
            self.commands.stop()
            self.commands = None
        if self.lists is not None:
            self.lists.stop()
            self.lists = None
        if self.webhooks is not None:
            self.webhooks.stop()
            self.webhooks = None
        if self.triage is not None:
            self.triage.stop()
            self.triage = None
        if self.notifier is not None:
            self.notifier.stop()
            self.notifier = None
        if self.ingest is not None:
            self.ingest.stop()  # commits and acknowledges what arrived; the session stays at the broker
            self.ingest = None
        if self.checkpoints is not None:
            self.checkpoints.stop()
            self.checkpoints = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.db is not None:
            self.db.close()
            self.db = None
