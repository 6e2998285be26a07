"""The interface the gate loop calls to get the next card, whatever reader sits at the door.

A reader kind is one file behind `Reader` (simulator.py, wiegand_reader.py for Wiegand on GPIO,
wedge_reader.py for evdev keyboard wedges, serial_reader.py, osdp_reader.py; drivers.py opens the
one a door's config names). Each driver turns what its hardware delivers into a typed `Frame`
and hands it to `decode`, so every kind gets the same checks and the same `CardReadError`
messages: a Wiegand driver yields `WiegandBits` (OSDP's raw card data is the same thing) or
`WiegandPulses`, a keyboard-wedge or serial driver yields `WedgeLine`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edge_agent.gate.credential import Credential, bits_from_pulses, parse_wedge_line, parse_wiegand


@dataclass(frozen=True)
class WiegandBits:
    """A frame as a string of 0 and 1 (a decoder chip, OSDP raw card data, the simulator)."""

    bits: str


@dataclass(frozen=True)
class WiegandPulses:
    """A frame as the pulses seen on D0/D1: (time in seconds, wire 0 or 1), in order."""

    pulses: tuple[tuple[float, int], ...]


@dataclass(frozen=True)
class WedgeLine:
    """A line typed by a keyboard-wedge reader (digits, Enter)."""

    text: str


Frame = WiegandBits | WiegandPulses | WedgeLine


def decode(frame: Frame) -> Credential:
    """The credential in a frame, or CardReadError naming what is wrong with it."""
    if isinstance(frame, WiegandBits):
        return parse_wiegand(frame.bits)
    if isinstance(frame, WiegandPulses):
        return parse_wiegand(bits_from_pulses(frame.pulses))
    return parse_wedge_line(frame.text)


class Reader(Protocol):
    """One card reader at one door. `read` waits up to `timeout` seconds (None: forever) for the
    next frame and returns its credential, or None when nothing arrived in time; a bad frame
    raises CardReadError and the reader stays usable. `close` releases the device."""

    name: str

    def read(self, timeout: float | None = None) -> Credential | None: ...

    def close(self) -> None: ...
