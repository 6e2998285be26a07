"""The gate doors of a running agent: per door a reader, door I/O and a controller, and a thread
that reads cards and checks the door's timers. Built from the config (`drivers`: whichever reader
kind and door-I/O backend each door names); a door whose reader or GPIO chip cannot open is
logged with its name and device and left out, and the other doors keep working. A door with a
camera gets a `DoorCamera`, which the camera's analysis feeds (`watchers`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from contract import Event
from edge_agent.config.doors import DoorConfig
from edge_agent.config.schema import AgentConfig
from edge_agent.gate.controller import DoorController, DoorRules
from edge_agent.gate.credential import CardReadError
from edge_agent.gate.door import DoorIO, DoorIOError
from edge_agent.gate.doorcam import DoorCamera
from edge_agent.gate.doorline import DoorLine, TailgateCounter
from edge_agent.gate.drivers import open_door_io, open_reader
from edge_agent.gate.engine import Engine
from edge_agent.gate.reader import Reader

log = logging.getLogger("diaolou.gate")
READ_TIMEOUT_S = 0.5  # how often a door's timers (held open) are checked while no card comes


class GateDoors:
    def __init__(
        self,
        config: AgentConfig,
        engine: Engine,
        emit: Callable[[Event], object],
        send_snapshot: Callable[[str, bytes], object] = lambda event_id, jpeg: None,
    ) -> None:
        self.readers: dict[str, Reader] = {}
        self.io: dict[str, DoorIO] = {}
        self.controllers: dict[str, DoorController] = {}
        self.cameras: dict[str, DoorCamera] = {}
        for name, door in config.doors.items():
            rules = DoorRules(name, door.building, door.relay.pulse_seconds, door.contact.held_open_seconds)
            try:
                io = open_door_io(door)
            except (DoorIOError, ValueError) as exc:  # one dead door must not stop the others
                log.error("door %s: door I/O: %s; this door is out of service until it is fixed", name, exc)
                continue
            try:
                self.readers[name] = open_reader(name, door.reader)
            except (OSError, ValueError) as exc:
                log.error("door %s: %s; this door reads no card until it is fixed", name, exc)
                io.close()
                continue
            camera = door_camera(name, door, config.storage.root, send_snapshot)
            controller = DoorController(rules, engine, io, emit, camera)
            io.watch(controller.on_contact, controller.on_exit)
            self.io[name] = io
            self.controllers[name] = controller
            if camera is not None:
                self.cameras[name] = camera
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def watchers(self, camera: str) -> list[DoorCamera]:
        """The doors `camera` watches: its analysis hands them its frames and tracks."""
        return [door for door in self.cameras.values() if door.camera == camera]

    def start(self) -> None:
        for camera in self.cameras.values():
            camera.start()
        for name in self.controllers:
            thread = threading.Thread(target=self._run, args=(name,), name=f"door-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self, name: str) -> None:
        reader, controller = self.readers[name], self.controllers[name]
        while not self._stop.is_set():
            try:
                credential = reader.read(READ_TIMEOUT_S)
                if credential is not None:
                    controller.on_card(credential, time.time())
            except CardReadError as exc:
                controller.on_bad_read(exc, time.time())
            except Exception:  # a door must keep working whatever one read did
                log.exception("door %s: card handling failed; the door keeps reading", name)
            controller.tick(time.time())

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        for name in self.controllers:
            self.readers[name].close()
            self.io[name].close()
        for camera in self.cameras.values():
            camera.stop(timeout)


def door_camera(
    name: str, door: DoorConfig, root: Path, send_snapshot: Callable[[str, bytes], object]
) -> DoorCamera | None:
    if door.camera is None:
        return None
    tail = door.tailgating
    counter = None
    if tail is not None and tail.enabled:
        counter = TailgateCounter(DoorLine(tail.line[0], tail.line[1], tail.inside))
    return DoorCamera(name, door.camera, root, send_snapshot, counter)
