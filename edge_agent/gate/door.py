"""Door I/O behind one interface: the lock relay, the door contact and the exit button.

`DoorIO` is what the gate's `DoorController` drives; `SimulatedDoor` stands in where no hardware
exists (tests, the bench, a box set up before the wiring) and `GpiodDoor` drives real lines
through libgpiod (PyPI `gpiod`, v2 API; `pip install gpiod`). Both report the contact and the exit
button by calling the controller back, so the controller does not care which one it has.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

ContactChanged = Callable[[bool, float], None]  # (door open?, when)
ExitPressed = Callable[[float], None]


class DoorIOError(RuntimeError):
    """Door hardware that cannot be opened or driven; the message names the chip and line."""


class DoorIO(Protocol):
    def release(self, seconds: float) -> None:
        """Energise (or de-energise, fail-safe locks) the lock relay for `seconds`."""

    def close(self) -> None: ...


@dataclass
class SimulatedDoor:
    """A door in software: `open_door()`/`close_door()` move the contact, `press_exit()` the
    button; `pulses` records every relay release (time, seconds)."""

    on_contact: ContactChanged | None = None
    on_exit: ExitPressed | None = None
    pulses: list[tuple[float, float]] = field(default_factory=list)
    is_open: bool = False

    def release(self, seconds: float) -> None:
        self.pulses.append((time.time(), seconds))

    def open_door(self, at: float | None = None) -> None:
        self._contact(True, at)

    def close_door(self, at: float | None = None) -> None:
        self._contact(False, at)

    def press_exit(self, at: float | None = None) -> None:
        if self.on_exit is not None:
            self.on_exit(time.time() if at is None else at)

    def _contact(self, is_open: bool, at: float | None) -> None:
        self.is_open = is_open
        if self.on_contact is not None:
            self.on_contact(is_open, time.time() if at is None else at)

    def close(self) -> None:
        pass


class GpiodDoor:
    """Relay, contact and exit button on lines of one GPIO chip (libgpiod v2). The contact and the
    button are watched for edges in a thread of their own."""

    def __init__(
        self,
        chip: str,
        relay_line: int,
        contact_line: int | None,
        exit_line: int | None,
        active_low: bool,
        on_contact: ContactChanged,
        on_exit: ExitPressed,
    ) -> None:
        try:
            import gpiod
            from gpiod.line import Bias, Direction, Edge, Value
        except ImportError:
            raise DoorIOError("door I/O on GPIO needs libgpiod's Python binding: pip install gpiod") from None
        self._value = Value
        self.relay_line = relay_line
        self.on_contact, self.on_exit = on_contact, on_exit
        self.contact_line, self.exit_line = contact_line, exit_line
        config: dict[int, Any] = {
            relay_line: gpiod.LineSettings(
                direction=Direction.OUTPUT, active_low=active_low, output_value=Value.INACTIVE
            )
        }
        for line in (contact_line, exit_line):
            if line is not None:
                config[line] = gpiod.LineSettings(
                    direction=Direction.INPUT, edge_detection=Edge.BOTH, bias=Bias.PULL_UP
                )
        try:
            self._request = gpiod.request_lines(chip, consumer="diaolou-gate", config=config)
        except (OSError, ValueError) as exc:
            raise DoorIOError(f"cannot open GPIO chip {chip} lines {sorted(config)}: {exc}") from None
        self._stop = threading.Event()
        self._timer: threading.Timer | None = None
        if contact_line is not None or exit_line is not None:
            threading.Thread(target=self._watch, name=f"gpio-{chip}", daemon=True).start()

    def release(self, seconds: float) -> None:
        self._request.set_value(self.relay_line, self._value.ACTIVE)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(seconds, self._request.set_value, (self.relay_line, self._value.INACTIVE))
        self._timer.daemon = True
        self._timer.start()

    def _watch(self) -> None:
        import datetime

        while not self._stop.is_set():
            if not self._request.wait_edge_events(datetime.timedelta(seconds=0.5)):
                continue
            for event in self._request.read_edge_events():
                at = event.timestamp_ns / 1e9 if event.timestamp_ns > 1e17 else time.time()
                if event.line_offset == self.contact_line:
                    # Pulled up: a closed door holds the contact low; open is high.
                    self.on_contact(self._request.get_value(self.contact_line) == self._value.ACTIVE, at)
                elif event.line_offset == self.exit_line and event.event_type == event.Type.FALLING_EDGE:
                    self.on_exit(at)

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        self._request.set_value(self.relay_line, self._value.INACTIVE)
        self._request.release()
