"""Gate doors in the agent's configuration: the building a door leads into, its card reader,
lock relay and door contact, and the camera that sees it (who swiped, tailgating). Kept apart
from schema.py so that each reader or door-I/O backend is a few fields here, not another screen
in a module every camera setting also lives in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field, model_validator

from edge_agent.config.base import Name, Point, Strict

# The door line's two points must be this far apart, and the inside point this far off the line
# (normalised units): closer, a box's jitter of a few pixels would flip sides.
MIN_LINE_LENGTH = 0.05
MIN_INSIDE_DISTANCE = 0.02


class ReaderConfig(Strict):
    """The card reader at a door."""

    kind: Literal["simulator", "serial"] = Field(
        "simulator",
        description="Reader driver. simulator: frames pushed by software (tests, a box set up before its readers "
        "are wired); serial: a reader printing card numbers as lines (9600 baud, `device` the port, pyserial); "
        "Wiegand on GPIO, keyboard-wedge (evdev) and OSDP readers come later.",
    )
    device: str | None = Field(
        None,
        max_length=200,
        description="The reader's device (e.g. /dev/ttyS1 for serial); the simulator has none.",
    )


class RelayConfig(Strict):
    """The lock relay (wired in a later release: today decisions are only taken and shown)."""

    pulse_seconds: float = Field(3.0, ge=0.2, le=60, description="How long the lock stays released after a grant.")
    active_low: bool = Field(False, description="The relay closes on a low output (many relay boards do).")


class ContactConfig(Strict):
    """The door contact (read in a later release)."""

    enabled: bool = Field(False, description="A door-position contact is wired.")
    held_open_seconds: float = Field(
        30.0, ge=5, le=3600, description="A door open longer than this after a grant raises an alarm."
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
    """One gate door: the building it leads into and its card reader."""

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
    relay: RelayConfig = Field(default_factory=RelayConfig)
    contact: ContactConfig = Field(default_factory=ContactConfig)
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
