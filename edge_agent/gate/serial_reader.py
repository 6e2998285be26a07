"""A card reader on a serial line (RS-232/RS-485 readers in their ASCII output mode, PyPI
`pyserial`): each card arrives as its number on one line, often framed by STX (0x02) and ETX
(0x03). Behind the same `Reader` interface and the same `decode` as every reader, so a garbage
line is refused with the same words as at a keyboard-wedge reader.

The line is read with a bound: a reader that streams noise without ever ending a line gets its
bytes discarded up to the next line end, refused as one too-long frame, and the door keeps going.
"""

from __future__ import annotations

from typing import Any

from edge_agent.gate.credential import MAX_FRAME_CHARS, CardReadError, Credential
from edge_agent.gate.reader import WedgeLine, decode

STX, ETX = b"\x02", b"\x03"
MAX_DISCARD = 64 * 1024  # bytes skipped looking for the end of an overlong line, at most


class SerialReader:
    def __init__(self, name: str, device: str, baudrate: int = 9600) -> None:
        try:
            import serial
        except ImportError:
            raise CardReadError("a serial reader needs pyserial: pip install pyserial (the `gate` extra)") from None
        self.name = name
        try:
            self._port: Any = serial.Serial(device, baudrate, timeout=0.5)
        except (OSError, ValueError, serial.SerialException) as exc:
            raise OSError(f"reader {name}: cannot open serial port {device}: {exc}") from None

    def read(self, timeout: float | None = None) -> Credential | None:
        self._port.timeout = timeout
        line: bytes = self._port.read_until(b"\n", MAX_FRAME_CHARS + 1)
        if not line:
            return None
        if not line.endswith((b"\n", b"\r")) and len(line) > MAX_FRAME_CHARS:
            skipped = 0
            while skipped < MAX_DISCARD:  # the rest of the overlong line, never kept
                more: bytes = self._port.read_until(b"\n", 4096)
                skipped += len(more)
                if not more or more.endswith(b"\n"):
                    break
            raise CardReadError(f"serial line too long: more than {MAX_FRAME_CHARS} characters before its end")
        body = line.strip(b"\r\n").removeprefix(STX).removesuffix(ETX)
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            raise CardReadError(f"serial line is not text: {body[:32]!r}") from None
        return decode(WedgeLine(text))

    def close(self) -> None:
        self._port.close()
