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
    def watch(self, on_contact: ContactChanged, on_exit: ExitPressed) -> None:
        """Start reporting the door contact and the exit button to these (the door's controller)."""

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

    def watch(self, on_contact: ContactChanged, on_exit: ExitPressed) -> None:
        self.on_contact, self.on_exit = on_contact, on_exit

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


@dataclass(frozen=True)
class GpioWiring:
    """Where a door's I/O is wired: lines of one chip, and which level means active on each."""

    chip: str
    relay_line: int
    contact_line: int | None = None
    exit_line: int | None = None
    relay_active_low: bool = False
    contact_active_low: bool = False  # active = the door is open
    exit_active_low: bool = True  # active = the button is pressed


class GpiodDoor:
    """Relay, contact and exit button on lines of one GPIO chip (libgpiod v2). The contact and the
    button are watched for edges in a thread of their own, once `watch` names who to tell."""

    def __init__(self, wiring: GpioWiring, request: Any = None) -> None:
        """`request`: lines already requested (a test's recording); by default they are requested here."""
        try:
            import gpiod
            from gpiod.line import Bias, Direction, Edge, Value
        except ImportError:
            raise DoorIOError("door I/O on GPIO needs libgpiod's Python binding: pip install gpiod") from None
        self._value = Value
        self.wiring = wiring
        config: dict[int, Any] = {
            wiring.relay_line: gpiod.LineSettings(
                direction=Direction.OUTPUT, active_low=wiring.relay_active_low, output_value=Value.INACTIVE
            )
        }
        for line, active_low in (
            (wiring.contact_line, wiring.contact_active_low),
            (wiring.exit_line, wiring.exit_active_low),
        ):
            if line is not None:
                config[line] = gpiod.LineSettings(
                    direction=Direction.INPUT, edge_detection=Edge.BOTH, bias=Bias.PULL_UP, active_low=active_low
                )
        try:
            self._request = request or gpiod.request_lines(wiring.chip, consumer="diaolou-gate", config=config)
        except (OSError, ValueError) as exc:
            raise DoorIOError(f"cannot open GPIO chip {wiring.chip} lines {sorted(config)}: {exc}") from None
        self._stop = threading.Event()
        self._timer: threading.Timer | None = None

    def watch(self, on_contact: ContactChanged, on_exit: ExitPressed) -> None:
        if self.wiring.contact_line is not None or self.wiring.exit_line is not None:
            args = (on_contact, on_exit)
            threading.Thread(target=self._watch, args=args, name=f"gpio-{self.wiring.chip}", daemon=True).start()

    def release(self, seconds: float) -> None:
        line = self.wiring.relay_line
        self._request.set_value(line, self._value.ACTIVE)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(seconds, self._request.set_value, (line, self._value.INACTIVE))
        self._timer.daemon = True
        self._timer.start()

    def _watch(self, on_contact: ContactChanged, on_exit: ExitPressed) -> None:
        import datetime

        while not self._stop.is_set():
            if not self._request.wait_edge_events(datetime.timedelta(seconds=0.5)):
                continue
            for event in self._request.read_edge_events():
                # Edge timestamps are on the kernel's monotonic clock; events are wall-clock times.
                at = time.time()
                # libgpiod applies each line's active-low to its edges: rising means "became active"
                # (door open, button down). The edge, not the line's level now: in a burst of edges
                # read together the level is the last one's, and an opening would read as closed.
                rising = event.event_type == event.Type.RISING_EDGE
                if event.line_offset == self.wiring.contact_line:
                    on_contact(rising, at)
                elif event.line_offset == self.wiring.exit_line and rising:
                    on_exit(at)

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        self._request.set_value(self.wiring.relay_line, self._value.INACTIVE)
        self._request.release()
