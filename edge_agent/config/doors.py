"""Gate doors in the agent's configuration: the building a door leads into, its card reader,
lock relay, door contact and exit button, where they are wired, and the camera that sees the door
(who swiped, tailgating). Kept apart from schema.py so that each reader or door-I/O backend is
a few fields here, not another screen in a module every camera setting also lives in."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge_agent.config.base import Name, Point, Strict

# The door line's two points must be this far apart, and the inside point this far off the line
# (normalised units): closer, a box's jitter of a few pixels would flip sides.
MIN_LINE_LENGTH = 0.05
MIN_INSIDE_DISTANCE = 0.02

GpioLine = int  # a line offset on its chip, as `gpioinfo` lists it
MAX_LINE = 1023


class ReaderConfig(Strict):
    """The card reader at a door; which fields apply depends on `kind`."""

    kind: Literal["simulator", "serial", "osdp", "wedge", "wiegand"] = Field(
        "simulator",
        description="Reader driver. simulator: frames pushed by software (tests, a box set up before its readers "
        "are wired); serial: a reader printing card numbers as lines on `device` (pyserial); osdp: an OSDP reader "
        "on the RS-485 port `device`, the agent as control panel, secure channel with the key in `key_file` "
        "(libosdp); wedge: a USB keyboard-wedge reader (evdev input device `device`, grabbed so card numbers "
        "never reach a console); wiegand: Wiegand 26/34 on two GPIO lines `d0_line` and `d1_line` of `chip` "
        "(libgpiod).",
    )
    device: str | None = Field(
        None,
        max_length=200,
        description="serial and osdp: the port (e.g. /dev/ttyUSB0, /dev/ttyS1); wedge: the input device, best by "
        "its stable name (e.g. /dev/input/by-id/usb-xxxx-event-kbd). The simulator and Wiegand have none.",
    )
    baudrate: int = Field(
        9600, ge=1200, le=921_600, description="serial and osdp: the line speed (OSDP readers ship at 9600)."
    )
    address: int = Field(0, ge=0, le=126, description="osdp: the reader's address on the RS-485 bus (0-126).")
    key_file: Path | None = Field(
        None,
        description="osdp: file holding the reader's secure channel key (SCBK) as 32 hex digits; never the key "
        "itself in this file. Keep it readable by the agent only (chmod 600). Relative to the config file.",
    )
    chip: str | None = Field(
        None,
        max_length=200,
        description="wiegand: the GPIO chip the D0 and D1 wires are on (e.g. /dev/gpiochip0; `gpiodetect` lists them).",
    )
    d0_line: GpioLine | None = Field(None, ge=0, le=MAX_LINE, description="wiegand: the line the D0 wire is on.")
    d1_line: GpioLine | None = Field(None, ge=0, le=MAX_LINE, description="wiegand: the line the D1 wire is on.")
    frame_gap_ms: float = Field(
        25.0,
        ge=3,
        le=25,
        description="wiegand: silence that ends a frame. The standard allows up to 20 ms between bits, so 25 ms "
        "never splits a frame; readers that send a bit every 1-2 ms (most) work with less.",
    )

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> ReaderConfig:
        kind = self.kind
        if kind in ("serial", "osdp", "wedge") and self.device is None:
            example = "/dev/input/by-id/usb-...-event-kbd" if kind == "wedge" else "/dev/ttyUSB0"
            raise ValueError(f"a {kind} reader needs `device` (e.g. {example})")
        if kind == "osdp" and self.key_file is None:
            raise ValueError("an osdp reader needs `key_file`: a file with its secure channel key as 32 hex digits")
        if kind != "osdp" and self.key_file is not None:
            raise ValueError(f"`key_file` is for osdp readers, not {kind}")
        if kind == "wiegand":
            if self.chip is None or self.d0_line is None or self.d1_line is None:
                raise ValueError("a wiegand reader needs `chip`, `d0_line` and `d1_line` (e.g. /dev/gpiochip0, 5, 6)")
            if self.d0_line == self.d1_line:
                raise ValueError(
                    f"a wiegand reader needs two distinct lines: d0_line and d1_line are both {self.d0_line}"
                )
            if self.device is not None:
                raise ValueError("a wiegand reader has no `device`: give `chip`, `d0_line` and `d1_line`")
        elif (self.chip, self.d0_line, self.d1_line) != (None, None, None):
            raise ValueError(f"`chip`, `d0_line` and `d1_line` are for wiegand readers, not {kind}")
        if kind == "simulator" and self.device is not None:
            raise ValueError("the simulator reader has no `device`; set `kind` to the reader's driver")
        return self


class RelayConfig(Strict):
    """The lock relay."""

    pulse_seconds: float = Field(3.0, ge=0.2, le=60, description="How long the lock stays released after a grant.")
    line: GpioLine | None = Field(None, ge=0, le=MAX_LINE, description="gpiod: the line driving the relay.")
    active_low: bool = Field(False, description="The relay closes on a low output (many relay boards do).")


class ContactConfig(Strict):
    """The door contact (door-position switch)."""

    enabled: bool = Field(False, description="A door-position contact is wired.")
    held_open_seconds: float = Field(
        30.0, ge=5, le=3600, description="A door open longer than this after a grant raises an alarm."
    )
    line: GpioLine | None = Field(None, ge=0, le=MAX_LINE, description="gpiod: the line the contact is on.")
    active_low: bool = Field(
        False,
        description="The line reads low while the door is open. Default (false): a contact closed to ground while "
        "the door is shut, pulled up, reads high when the door opens.",
    )


class ExitButtonConfig(Strict):
    """The request-to-exit button inside the door: a press releases the lock (no forced-open alarm)."""

    line: GpioLine | None = Field(
        None, ge=0, le=MAX_LINE, description="gpiod: the line the button is on; none: no button."
    )
    active_low: bool = Field(
        True, description="The line reads low while pressed (a button to ground on a pulled-up line, the usual)."
    )


class DoorIOConfig(Strict):
    """Where the relay, contact and exit button are driven from."""

    backend: Literal["simulator", "gpiod"] = Field(
        "simulator",
        description="simulator: no hardware, the lock is released in software only (tests, a box before its wiring); "
        "gpiod: GPIO lines of `chip` through libgpiod (relay.line, contact.line, exit_button.line).",
    )
    chip: str | None = Field(
        None, max_length=200, description="gpiod: the GPIO chip of the door's lines (e.g. /dev/gpiochip0)."
    )


class TailgatingConfig(Strict):
    """Tailgating at a door with a camera: persons crossing a line across the doorway, counted per grant."""

    enabled: bool = Field(True, description="Count crossings and raise tailgating alarms (false keeps the line, off).")
    line: list[Point] = Field(
        min_length=2,
        max_length=2,
        description="The door line: two points [[x, y], [x, y]] in the camera's picture, normalised (0-1 from "
        "the top left), drawn on the floor across the threshold. A person counts when their feet cross it.",
    )
    inside: Point = Field(
        description="Any point [x, y] on the inside of the line (where a person stands once through the door): "
        "crossings toward it count, crossings away from it (people leaving) do not."
    )

    @model_validator(mode="after")
    def _a_real_line(self) -> TailgatingConfig:
        (ax, ay), (bx, by) = self.line
        length = ((bx - ax) ** 2 + (by - ay) ** 2) ** 0.5
        if length < MIN_LINE_LENGTH:
            raise ValueError(f"the door line's two points are {length:.3f} apart: draw it across the whole doorway")
        px, py = self.inside
        if abs((bx - ax) * (py - ay) - (by - ay) * (px - ax)) / length < MIN_INSIDE_DISTANCE:
            raise ValueError("`inside` lies on the door line: give a point clearly on the inside of the door")
        return self


class DoorConfig(Strict):
    """One gate door: the building it leads into, its card reader and its door I/O."""

    building: Name = Field(
        description="Building the door leads into (lower-case letters, digits, - and _); residents of this "
        "building may always pass, as the allow-list's `building` column says."
    )
    description: str = Field("", max_length=200, description="Where the door is, for people (e.g. east entrance).")
    direction: Literal["in", "out"] = Field(
        "in", description="in: the reader is outside (entering); out: the reader is inside (leaving)."
    )
    area: Name | None = Field(None, description="Anti-passback area this door enters or leaves; default: the building.")
    anti_passback: bool = Field(
        False, description="Refuse a second entry into the area until the holder has left through an out door."
    )
    reader: ReaderConfig = Field(default_factory=ReaderConfig)
    io: DoorIOConfig = Field(default_factory=DoorIOConfig)
    relay: RelayConfig = Field(default_factory=RelayConfig)
    contact: ContactConfig = Field(default_factory=ContactConfig)
    exit_button: ExitButtonConfig = Field(default_factory=ExitButtonConfig)
    camera: Name | None = Field(
        None,
        description="A camera of this box (under `cameras`, detection enabled) that sees the door: every "
        "decision and alarm carries its picture at that moment, and playback links to it.",
    )
    tailgating: TailgatingConfig | None = Field(
        None, description="Count persons crossing the door line per grant (needs `camera`); none: not counted."
    )

    @model_validator(mode="after")
    def _tailgating_needs_camera(self) -> DoorConfig:
        if self.tailgating is not None and self.camera is None:
            raise ValueError("`tailgating` needs `camera`: the camera that sees the door line")
        return self

    @model_validator(mode="after")
    def _wiring(self) -> DoorConfig:
        lines = {
            "relay.line": self.relay.line,
            "contact.line": self.contact.line,
            "exit_button.line": self.exit_button.line,
        }
        if self.io.backend == "simulator":
            wired = [key for key, line in lines.items() if line is not None]
            if wired or self.io.chip is not None:
                raise ValueError(
                    f"{', '.join(wired) or 'io.chip'} set but `io.backend` is simulator: set `io.backend: gpiod`"
                )
            return self
        if self.io.chip is None or self.relay.line is None:
            raise ValueError("gpiod door I/O needs `io.chip` and `relay.line` (e.g. /dev/gpiochip0 and 17)")
        if self.contact.enabled != (self.contact.line is not None):
            raise ValueError("with gpiod door I/O, `contact.enabled` and `contact.line` go together")
        used: dict[int, str] = {}
        if self.reader.kind == "wiegand" and self.reader.chip == self.io.chip:
            used = {self.reader.d0_line: "reader.d0_line", self.reader.d1_line: "reader.d1_line"}  # type: ignore[dict-item]
        for key, line in lines.items():
            if line is None:
                continue
            if line in used:
                raise ValueError(f"{key} and {used[line]} are both line {line} of {self.io.chip}")
            used[line] = key
        return self


def check_door_cameras(doors: Mapping[str, DoorConfig], detecting: Mapping[str, bool]) -> None:
    """Each door's camera is one of the box's cameras (`detecting`: camera -> detection enabled) and
    decodes frames: the snapshots and the tailgating count use the frames its detection decodes."""
    for name, door in doors.items():
        if door.camera is None:
            continue
        if door.camera not in detecting:
            known = ", ".join(sorted(detecting)) or "none"
            raise ValueError(f"door {name}: camera {door.camera!r} is not one of this box's cameras ({known})")
        if not detecting[door.camera]:
            raise ValueError(
                f"door {name}: camera {door.camera} has detect.enabled: false; a door camera needs detection "
                "on (its snapshots and tailgating count come from the frames detection decodes)"
            )
