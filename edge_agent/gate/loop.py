"""The gate doors of a running agent: per door a reader, door I/O and a controller, and a thread
that reads cards and checks the door's timers. Built from the config (`drivers`: whichever reader
kind and door-I/O backend each door names). A door whose GPIO chip cannot open is logged with
its name and device and left out, and the other doors keep working. A reader that cannot open (a
USB reader not enumerated yet, a serial cable pulled) is retried every REOPEN_S while its door
keeps watching its contact and exit button, as a commercial controller does: the door reads cards
again once the reader is back, without a restart. A door with a camera gets a `DoorCamera`,
which the camera's analysis feeds (`watchers`)."""

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
REOPEN_S = 10.0  # how often a reader that is not there is tried again


class GateDoors:
    def __init__(
        self,
        config: AgentConfig,
        engine: Engine,
        emit: Callable[[Event], object],
        send_snapshot: Callable[[str, bytes], object] = lambda event_id, jpeg: None,
    ) -> None:
        self.readers: dict[str, Reader | None] = {}  # None: not open, retried every REOPEN_S
        self.configs = config.doors
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
            self.readers[name] = self._open_reader(name, first=True)
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

    def _open_reader(self, name: str, first: bool = False) -> Reader | None:
        try:
            reader = open_reader(name, self.configs[name].reader)
        except (OSError, ValueError) as exc:
            if first:  # later attempts stay quiet: one line, not one every REOPEN_S for days
                log.error(
                    "door %s: %s; this door reads no card until it opens (tried every %.0f s)", name, exc, REOPEN_S
                )
            return None
        if not first:
            log.warning("door %s: its reader is open again", name)
        return reader

    def _run(self, name: str) -> None:
        controller = self.controllers[name]
        retry_at = time.monotonic() + REOPEN_S
        while not self._stop.is_set():
            reader = self.readers[name]
            if reader is None and time.monotonic() >= retry_at:
                reader = self.readers[name] = self._open_reader(name)
                retry_at = time.monotonic() + REOPEN_S
            if reader is None:
                self._stop.wait(READ_TIMEOUT_S)
                controller.tick(time.time())
                continue
            try:
                credential = reader.read(READ_TIMEOUT_S)
                if credential is not None:
                    controller.on_card(credential, time.time())
            except CardReadError as exc:
                controller.on_bad_read(exc, time.time())
            except OSError as exc:  # the reader went away (a cable pulled): try again later
                log.error("door %s: reader lost: %s; trying again every %.0f s", name, exc, REOPEN_S)
                reader.close()
                self.readers[name] = None
                retry_at = time.monotonic() + REOPEN_S
            except Exception:  # a door must keep working whatever one read did
                log.exception("door %s: card handling failed; the door keeps reading", name)
            controller.tick(time.time())

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        for name in self.controllers:
            reader = self.readers[name]
            if reader is not None:
                reader.close()
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
