"""Gate doors in the agent's configuration: the building a door leads into, its card reader,
lock relay and door contact. Kept apart from schema.py so that each reader or door-I/O backend
is a few fields here, not another screen in a module every camera setting also lives in."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge_agent.config.base import Name, Strict


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
