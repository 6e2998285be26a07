"""An OSDP reader with the agent as control panel (PyPI `libosdp`): the reader (the peripheral
device, PD) sends card reads over RS-485 inside OSDP's secure channel (AES-128 with the reader's
SCBK); the agent polls it, and each card read event becomes a `Frame` for the same `decode` as
every reader. Raw Wiegand card data (the usual) is the bits MSB first, `length` of them; ASCII
card data is a typed number. Anything else (key presses, other formats) is not a card and is
refused with its reason.
"""

from __future__ import annotations

import string
import threading
from pathlib import Path
from typing import Any

from edge_agent.gate.credential import CardReadError, Credential
from edge_agent.gate.reader import Frame, WedgeLine, WiegandBits, decode

SCBK_BYTES = 16  # AES-128: the reader's secure channel base key
CARD_READ = 1  # libosdp's EVENT_CARDREAD
FORMAT_RAW_WIEGAND, FORMAT_ASCII = 1, 2  # libosdp's CARD_FMT_RAW_WIEGAND, CARD_FMT_ASCII
MAX_CARD_BITS = 64


def frame_of(event: dict[str, Any]) -> Frame:
    """The frame in an OSDP card read event, or CardReadError naming what it is instead."""
    if event.get("event") != CARD_READ:
        raise CardReadError(f"OSDP event {event.get('event')!r} is not a card read")
    data, length, fmt = event.get("data", b""), event.get("length", 0), event.get("format")
    if not isinstance(data, bytes) or not isinstance(length, int):
        raise CardReadError("OSDP card read without data")
    if fmt == FORMAT_RAW_WIEGAND:
        if not 0 < length <= min(MAX_CARD_BITS, len(data) * 8):
            raise CardReadError(f"OSDP card read of {length} bits in {len(data)} bytes")
        return WiegandBits("".join(format(b, "08b") for b in data)[:length])
    if fmt == FORMAT_ASCII:
        try:
            return WedgeLine(data.decode("ascii"))
        except UnicodeDecodeError:
            raise CardReadError(f"OSDP ASCII card data is not ASCII: {data[:32]!r}") from None
    raise CardReadError(f"OSDP card format {fmt!r} is neither raw Wiegand nor ASCII")


class OsdpReader:
    """One OSDP reader at `address` on `channel` (an `osdp.Channel`: the RS-485 port), secure
    channel with `scbk`. `read` waits for the next card; `online` says whether the reader answers
    and the secure channel is up."""

    def __init__(self, name: str, channel: Any, address: int, scbk: bytes) -> None:
        try:
            import osdp
        except ImportError:
            raise CardReadError("an OSDP reader needs libosdp: pip install libosdp (the `gate` extra)") from None
        if len(scbk) != SCBK_BYTES:
            raise ValueError(f"reader {name}: the OSDP secure channel key must be {SCBK_BYTES} bytes")
        self.name = name
        self.address = address
        # EnforceSecure: without it libosdp talks in clear to a reader whose secure channel fails
        # (a swapped reader, a wrong or default key), and would take its card reads.
        info = osdp.PDInfo(address, channel, scbk=scbk, name=name, flags=[osdp.LibFlag.EnforceSecure])
        self._cp = osdp.ControlPanel([info], log_level=osdp.LogLevel.Warning)
        self._cp.start()
        self._lock = threading.Lock()

    def wait_secure(self, timeout: float) -> bool:
        return bool(self._cp.online_wait(self.address, timeout=timeout) and self._cp.sc_wait(self.address, timeout))

    def read(self, timeout: float | None = None) -> Credential | None:
        event = self._cp.get_event(self.address, timeout=3600 if timeout is None else timeout)
        if event is None:
            return None
        return decode(frame_of(event))

    def close(self) -> None:
        with self._lock:
            self._cp.stop()


def read_key_file(path: Path) -> bytes:
    """The secure channel key in `path`: 32 hex digits (spaces and a trailing newline allowed)."""
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise OSError(f"cannot read the OSDP key file {path}: {exc.strerror}") from None
    digits = "".join(text.split())
    if len(digits) != 2 * SCBK_BYTES or set(digits) - set(string.hexdigits):
        raise ValueError(
            f"OSDP key file {path}: {2 * SCBK_BYTES} hex digits expected (a 128-bit key), found {len(digits)}"
        )
    return bytes.fromhex(digits)


def open_osdp_reader(name: str, device: str, baudrate: int, address: int, key_file: Path) -> OsdpReader:
    """An OSDP reader on the RS-485 port `device` (pyserial), its key read from `key_file`."""
    key = read_key_file(key_file)
    try:
        import osdp
        import serial
    except ImportError:
        raise OSError(
            "an OSDP reader needs libosdp and pyserial: pip install libosdp pyserial (the `gate` extra)"
        ) from None

    class SerialChannel(osdp.Channel):  # type: ignore[misc]
        """libosdp's transport over the port: it polls, so reads never block."""

        def __init__(self, port: Any) -> None:
            super().__init__()
            self.port = port

        def read(self, max_bytes: int) -> bytes:
            return bytes(self.port.read(max_bytes))

        def write(self, buf: bytes) -> int:
            return int(self.port.write(buf))

        def flush(self) -> None:
            self.port.reset_input_buffer()

    try:
        port = serial.Serial(device, baudrate, timeout=0)
    except (OSError, ValueError, serial.SerialException) as exc:
        raise OSError(f"reader {name}: cannot open serial port {device}: {exc}") from None
    return OsdpReader(name, SerialChannel(port), address, key)
