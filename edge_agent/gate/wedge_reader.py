"""A USB keyboard-wedge reader (the cheapest card readers): the reader is a keyboard that types the
card number and presses Enter. Read from its evdev node (/dev/input/eventN, best by its stable
/dev/input/by-id/ name) and grabbed (EVIOCGRAB), so card numbers never reach a console or a
login prompt on the box.

The kernel's `struct input_event` is read directly with `struct`: its layout (a timeval, then
type, code, value) is part of the kernel's stable ABI. PyPI `evdev` would do the same in C, but
it has no wheel for the ARM boards gates run on (it compiles against kernel headers at install)
and its device object insists on a real device node, whereas reading the structs ourselves lets
a test feed the very bytes the kernel writes through a pipe, on the code path that runs at the door.

A line is capped: keys beyond MAX_FRAME_CHARS (a stuck key repeating, a hostile "keyboard") are
counted, not kept, and the line is refused at its Enter with how long it was; the next line is
read as usual. Each line then goes through the same `decode` as every reader.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import struct
import threading
import time

from edge_agent.gate.credential import MAX_FRAME_CHARS, CardReadError, Credential
from edge_agent.gate.reader import WedgeLine, decode

log = logging.getLogger("diaolou.gate")

# struct input_event { struct timeval time; __u16 type; __u16 code; __s32 value; }: timeval is two
# C longs, so 24 bytes on 64-bit boards and 16 on 32-bit ones; native `l` follows the platform.
EVENT = struct.Struct("@llHHi")
EV_SYN, EV_KEY, EV_MSC = 0, 1, 4
MSC_SCAN = 4
KEY_UP, KEY_DOWN, KEY_REPEAT = 0, 1, 2
EVIOCGRAB = 0x40044590  # _IOW('E', 0x90, int)
REOPEN_EVERY_S = 2.0  # an unplugged reader is looked for again this often

# Key codes from linux/input-event-codes.h: what card readers type (digits, hex letters, Enter).
KEY_ENTER, KEY_KPENTER = 28, 96
KEY_LEFTSHIFT, KEY_RIGHTSHIFT = 42, 54
_DIGITS = {2: "1", 3: "2", 4: "3", 5: "4", 6: "5", 7: "6", 8: "7", 9: "8", 10: "9", 11: "0"}
_SHIFTED_DIGITS = {2: "!", 3: "@", 4: "#", 5: "$", 6: "%", 7: "^", 8: "&", 9: "*", 10: "(", 11: ")"}
_KEYPAD = {71: "7", 72: "8", 73: "9", 75: "4", 76: "5", 77: "6", 79: "1", 80: "2", 81: "3", 82: "0"}
_LETTERS = {30: "a", 48: "b", 46: "c", 32: "d", 18: "e", 33: "f"}
UNKNOWN_KEY = "?"  # any other key: kept as a mark so the line is refused as no card number


def char_of(code: int, shifted: bool) -> str:
    """The character a key types (US layout, as readers assume)."""
    if code in _DIGITS:
        return _SHIFTED_DIGITS[code] if shifted else _DIGITS[code]
    if code in _LETTERS:
        return _LETTERS[code].upper() if shifted else _LETTERS[code]
    return _KEYPAD.get(code, UNKNOWN_KEY)


def encode_line(text: str, enter: int = KEY_ENTER) -> bytes:
    """What the kernel writes while a reader types `text` and Enter (tests, the bench): per key a scan
    code, the key going down, a report boundary, the key coming up, a boundary; Shift for capitals."""
    codes = {char: code for code, char in (_DIGITS | _LETTERS).items()}
    shifted = {char: code for code, char in _SHIFTED_DIGITS.items()}

    def key(code: int, value: int) -> bytes:
        return (
            EVENT.pack(0, 0, EV_MSC, MSC_SCAN, 0x70000 + code)
            + EVENT.pack(0, 0, EV_KEY, code, value)
            + EVENT.pack(0, 0, EV_SYN, 0, 0)
        )

    out = []
    for char in text:
        if char in shifted or char.isupper():
            code = shifted.get(char) or codes[char.lower()]
            out.append(
                key(KEY_LEFTSHIFT, KEY_DOWN) + key(code, KEY_DOWN) + key(code, KEY_UP) + key(KEY_LEFTSHIFT, KEY_UP)
            )
        else:
            out.append(key(codes[char], KEY_DOWN) + key(codes[char], KEY_UP))
    return b"".join(out) + key(enter, KEY_DOWN) + key(enter, KEY_UP)


class WedgeLines:
    """Key events in, lines out: the typing state of one keyboard, whatever delivers its events."""

    def __init__(self) -> None:
        self._chars: list[str] = []
        self._typed = 0  # keys in this line, including those past the cap
        self._shift: set[int] = set()

    def key(self, code: int, value: int) -> WedgeLine | CardReadError | None:
        """One EV_KEY event; a finished line (or why it is refused) at Enter."""
        if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
            if value == KEY_UP:
                self._shift.discard(code)
            else:
                self._shift.add(code)
            return None
        if value == KEY_UP:  # a held key types on press and on each auto-repeat
            return None
        if code in (KEY_ENTER, KEY_KPENTER):
            typed, text = self._typed, "".join(self._chars)
            self._chars, self._typed = [], 0
            if typed > MAX_FRAME_CHARS:
                return CardReadError(
                    f"keyboard line too long: {typed} keys before Enter (at most {MAX_FRAME_CHARS}; a stuck key?)"
                )
            return WedgeLine(text)
        self._typed += 1
        if self._typed <= MAX_FRAME_CHARS:
            self._chars.append(char_of(code, bool(self._shift)))
        return None


class WedgeReader:
    """A keyboard-wedge reader on the evdev node `device`. `grab`: take the device for ourselves
    (always at a door; only a test reading a pipe has nothing to grab)."""

    def __init__(self, name: str, device: str, grab: bool = True) -> None:
        self.name, self.device, self.grab = name, device, grab
        self._lines = WedgeLines()
        self._pending: list[WedgeLine | CardReadError] = []
        self._buffer = b""
        self._closed = threading.Event()
        self._fd: int | None = self._open()
        self._next_open = 0.0

    def _open(self) -> int:
        try:
            fd = os.open(self.device, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise OSError(f"reader {self.name}: cannot open input device {self.device}: {exc.strerror}") from None
        if self.grab:
            try:
                fcntl.ioctl(fd, EVIOCGRAB, 1)
            except OSError as exc:
                os.close(fd)
                raise OSError(
                    f"reader {self.name}: cannot grab input device {self.device} ({exc.strerror}): is it a keyboard "
                    "event device (/dev/input/...-event-kbd), not held by another program?"
                ) from None
        return fd

    def read(self, timeout: float | None = None) -> Credential | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._fd is None and not self._reopen(left):
                return None
            assert self._fd is not None
            ready, _, _ = select.select([self._fd], [], [], left)
            if not ready:
                return None
            self._take(self._fd)
            if deadline is not None and time.monotonic() >= deadline and not self._pending:
                return None
        item = self._pending.pop(0)
        if isinstance(item, CardReadError):
            raise item
        return decode(item)

    def _take(self, fd: int) -> None:
        try:
            data = os.read(fd, EVENT.size * 64)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.ENODEV:
                raise
            data = b""
        if not data:  # ENODEV or end of file: the reader was unplugged
            log.warning("reader %s: input device %s is gone (unplugged?); looking for it again", self.name, self.device)
            self._drop()
            return
        self._buffer += data
        whole = len(self._buffer) - len(self._buffer) % EVENT.size
        for _sec, _usec, kind, code, value in EVENT.iter_unpack(self._buffer[:whole]):
            if kind == EV_KEY:
                line = self._lines.key(code, value)
                if line is not None:
                    self._pending.append(line)
        self._buffer = self._buffer[whole:]

    def _reopen(self, left: float | None) -> bool:
        """Try the device again (a replugged reader keeps its by-id name); wait out `left` otherwise."""
        now = time.monotonic()
        if now >= self._next_open:
            self._next_open = now + REOPEN_EVERY_S
            try:
                self._fd = self._open()
                self._lines, self._buffer = WedgeLines(), b""
                log.warning("reader %s: input device %s is back", self.name, self.device)
                return True
            except OSError:
                pass
        wait = self._next_open - now if left is None else min(left, self._next_open - now)
        self._closed.wait(wait)
        return False

    def _drop(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._next_open = time.monotonic() + REOPEN_EVERY_S

    def close(self) -> None:
        self._closed.set()
        self._drop()
