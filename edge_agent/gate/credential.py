"""What a card reader hands over, checked before anything looks it up.

A credential is a typed value (`Credential`), never a bare string: the engine looks it up by
(facility, number, bits). Three shapes arrive from readers:

- Wiegand 26 (H10301): bit 0 is even parity over bits 1-12, bits 1-8 the facility code, bits
  9-24 the card number, bit 25 odd parity over bits 13-24.
- Wiegand 34 (H10306): bit 0 is even parity over bits 1-16, bits 1-16 the facility code, bits
  17-32 the card number, bit 33 odd parity over bits 17-32.
- A keyboard-wedge line: the card number as decimal digits ended by Enter.

Wiegand bits may come as a string of 0/1 or as the pulses on the D0/D1 wires (`bits_from_pulses`).
Anything else (garbage, a wrong parity, a length no format has, an oversized line) raises
`CardReadError` saying what is wrong: a reader on a public door must never crash the gate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from common.residents_csv import MAX_WEDGE_DIGITS, WIEGAND_LAYOUT, Format

# Longer than any frame of a supported format: enough to say "too long" without keeping megabytes.
MAX_FRAME_CHARS = 64

# Wiegand pulse timing: pulses are ~50-100 us wide, 1-2 ms apart; a frame ends after ~25 ms of
# silence. Pulses closer than this are contact bounce or noise, not data.
MIN_PULSE_SPACING_S = 0.000_2
MAX_PULSE_SPACING_S = 0.025


class CardReadError(ValueError):
    """A frame that is not a valid credential; the message names what is wrong with it."""


@dataclass(frozen=True)
class Credential:
    """One card as read: its format, bit length (0 for a typed number), facility code (None when the
    format has none), card number, and the raw text it came from (for the access log)."""

    format: Format
    bits: int
    facility: int | None
    number: int
    raw: str

    @property
    def label(self) -> str:
        """How an installer writes it: `fc/number` for Wiegand, the number alone otherwise."""
        return str(self.number) if self.facility is None else f"{self.facility}/{self.number}"


def _shown(text: str) -> str:
    return repr(text if len(text) <= MAX_FRAME_CHARS else text[:MAX_FRAME_CHARS] + "...")


def parse_wiegand(bits: str) -> Credential:
    """A Wiegand 26 or 34 frame from its bits as a string of 0 and 1, parity checked."""
    if len(bits) > MAX_FRAME_CHARS:
        raise CardReadError(f"Wiegand frame too long: {len(bits)} characters (26 or 34 bits expected)")
    if not bits or set(bits) - {"0", "1"}:
        raise CardReadError(f"not a Wiegand frame: {_shown(bits)} (only 0 and 1 expected)")
    layout = WIEGAND_LAYOUT.get(len(bits))
    if layout is None:
        raise CardReadError(f"wrong Wiegand length: {len(bits)} bits (26 or 34 expected)")
    fc_bits, _ = layout
    half = len(bits) // 2
    if bits[:half].count("1") % 2 != 0:
        raise CardReadError(f"Wiegand {len(bits)}: wrong even parity over bits 0-{half - 1} (leading half)")
    if bits[half:].count("1") % 2 != 1:
        raise CardReadError(f"Wiegand {len(bits)}: wrong odd parity over bits {half}-{len(bits) - 1} (trailing half)")
    facility = int(bits[1 : 1 + fc_bits], 2)
    number = int(bits[1 + fc_bits : -1], 2)
    fmt: Format = "wiegand26" if len(bits) == 26 else "wiegand34"
    return Credential(fmt, len(bits), facility, number, bits)


def encode_wiegand(bits: int, facility: int, number: int) -> str:
    """The frame a reader would send for this card (tests, the simulator, the bench)."""
    layout = WIEGAND_LAYOUT.get(bits)
    if layout is None:
        raise ValueError(f"no Wiegand {bits} layout (26 or 34)")
    fc_bits, num_bits = layout
    if not 0 <= facility < 1 << fc_bits or not 0 <= number < 1 << num_bits:
        raise ValueError(f"facility {facility} / number {number} do not fit Wiegand {bits}")
    body = format(facility, f"0{fc_bits}b") + format(number, f"0{num_bits}b")
    half = len(body) // 2
    lead = "1" if body[:half].count("1") % 2 else "0"
    trail = "0" if body[half:].count("1") % 2 else "1"
    return lead + body + trail


def bits_from_pulses(pulses: Sequence[tuple[float, int]]) -> str:
    """The bits of one frame from its pulses: (time in seconds, wire) with wire 0 for D0 and 1 for
    D1, in the order the edges were seen. Noise (pulses too close) and a frame that stalls (a gap
    long enough to end it) are errors, not bits."""
    if not pulses:
        raise CardReadError("empty Wiegand frame: no pulses")
    if len(pulses) > MAX_FRAME_CHARS:
        raise CardReadError(f"Wiegand frame too long: {len(pulses)} pulses (26 or 34 expected)")
    out = []
    previous: float | None = None
    for i, (when, wire) in enumerate(pulses):
        if wire not in (0, 1):
            raise CardReadError(f"pulse {i}: wire {wire!r} is neither D0 (0) nor D1 (1)")
        if previous is not None:
            gap = when - previous
            if gap < MIN_PULSE_SPACING_S:
                raise CardReadError(
                    f"pulse {i}: {gap * 1e6:.0f} us after the previous one (noise or bounce; "
                    f"at least {MIN_PULSE_SPACING_S * 1e6:.0f} us expected)"
                )
            if gap > MAX_PULSE_SPACING_S:
                raise CardReadError(
                    f"pulse {i}: {gap * 1e3:.1f} ms after the previous one: the frame was cut after {i} bits"
                )
        previous = when
        out.append(str(wire))
    return "".join(out)


def parse_wedge_line(line: str) -> Credential:
    """A keyboard-wedge line: decimal digits, optionally ended by Enter (CR and/or LF)."""
    if len(line) > MAX_FRAME_CHARS:
        raise CardReadError(f"keyboard line too long: {len(line)} characters (at most {MAX_WEDGE_DIGITS} digits)")
    digits = line.rstrip("\r\n")
    if not digits:
        raise CardReadError("empty keyboard line: no digits before Enter")
    if not re.fullmatch(r"[0-9]+", digits, flags=re.ASCII):
        raise CardReadError(f"keyboard line {_shown(digits)} is not a card number (digits only expected)")
    if len(digits) > MAX_WEDGE_DIGITS:
        raise CardReadError(f"card number too long: {len(digits)} digits (at most {MAX_WEDGE_DIGITS})")
    return Credential("number", 0, None, int(digits), digits)


def parse_card(text: str) -> Credential | tuple[int, int]:
    """What an installer types (`decide --card`): `26:BITS` or `34:BITS` (a frame), `FC/NUMBER`
    (a Wiegand card of either length, returned as (facility, number)) or a plain card number."""
    text = text.strip()
    if len(text) > MAX_FRAME_CHARS:
        raise CardReadError(f"card too long: {len(text)} characters")
    prefix, colon, rest = text.partition(":")
    if colon:
        if prefix not in ("26", "34"):
            raise CardReadError(f"{_shown(text)}: write 26:BITS or 34:BITS for a Wiegand frame")
        credential = parse_wiegand(rest)
        if credential.bits != int(prefix):
            raise CardReadError(f"{_shown(text)}: {credential.bits} bits after '{prefix}:'")
        return credential
    facility, slash, number = text.partition("/")
    if slash:
        if not (facility.isascii() and facility.isdigit() and number.isascii() and number.isdigit()):
            raise CardReadError(f"{_shown(text)}: write FC/NUMBER with decimal numbers, e.g. 12/34567")
        fc, num = int(facility), int(number)
        if fc >= 1 << 16 or num >= 1 << 16:
            raise CardReadError(f"{_shown(text)}: facility and number must be below 65536")
        return fc, num
    return parse_wedge_line(text)
