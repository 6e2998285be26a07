"""A Wiegand reader wired to two GPIO lines (D0 and D1), read through libgpiod's edge events.

Both wires idle high; the reader sends a 0 as a low pulse on D0 and a 1 as a low pulse on D1, so
each falling edge is one bit. Timings (SIA AC-01, the Wiegand interface standard): a pulse is
20-100 us wide (50 us typical) and pulses start 200 us to 20 ms apart (most readers: 1-2 ms).
Nothing in the protocol marks the end of a frame: it ends when the wires stay quiet, and a
silence longer than the standard's longest interval (25 ms by default, `frame_gap_ms`) can only
be the end. The kernel timestamps each edge, so a busy box that reads the events late still sees
the true spacing; `bits_from_pulses` then refuses pulses too close together (noise, bounce).

The frame logic (`PulseFrames`) is fed by an `EdgeSource`: `GpiodEdges` over a libgpiod line
request at the door, or any object with the same two methods in tests, replaying a recorded
stream of real `gpiod.EdgeEvent`s through the same consumer. Wiegand wires carry 5 V on most
readers: they need a level shifter or divider before a 3.3 V GPIO (docs/gates.md).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Protocol

from edge_agent.gate.credential import MAX_FRAME_CHARS, CardReadError, Credential
from edge_agent.gate.reader import WiegandPulses, decode

FRAME_GAP_S = 0.025
EVENTS_PER_READ = 256


class EdgeSource(Protocol):
    """What delivers edges: a libgpiod line request (`gpiod.LineRequest`) or a recording of one."""

    def wait_edge_events(self, timeout: float | None = None) -> bool: ...

    def read_edge_events(self, max_events: int | None = None) -> list[Any]: ...


class PulseFrames:
    """Falling edges in, frames out. Memory is bounded: a frame that goes on past any format's length
    (a wire shorted to a clock, noise) is counted, not kept, and refused when the wires go quiet."""

    def __init__(self, gap_s: float = FRAME_GAP_S) -> None:
        self.gap_s = gap_s
        self._pulses: list[tuple[float, int]] = []
        self._count = 0
        self._last: float | None = None

    @property
    def open(self) -> bool:
        return self._count > 0

    @property
    def last_edge(self) -> float | None:
        return self._last

    def edge(self, when: float, wire: int) -> WiegandPulses | CardReadError | None:
        """One falling edge at `when` (seconds, the kernel's clock) on `wire`; the frame it ended, if any."""
        ended = self.end() if self._last is not None and when - self._last > self.gap_s else None
        self._last = when
        self._count += 1
        if self._count <= MAX_FRAME_CHARS:
            self._pulses.append((when, wire))
        return ended

    def end(self) -> WiegandPulses | CardReadError | None:
        """The wires went quiet: the frame so far, if any."""
        count, pulses = self._count, self._pulses
        self._pulses, self._count = [], 0
        if count == 0:
            return None
        if count > MAX_FRAME_CHARS:
            return CardReadError(f"Wiegand frame too long: {count} pulses (26 or 34 expected)")
        return WiegandPulses(tuple(pulses))


class GpiodEdges:
    """Falling edges on D0 and D1 from a libgpiod v2 line request, as (seconds, wire)."""

    def __init__(self, request: EdgeSource, d0_line: int, d1_line: int) -> None:
        self.request = request
        self.wires = {d0_line: 0, d1_line: 1}

    def wait(self, timeout: float | None) -> list[tuple[float, int]]:
        if not self.request.wait_edge_events(timeout):
            return []
        edges = []
        for event in self.request.read_edge_events(EVENTS_PER_READ):
            wire = self.wires.get(event.line_offset)
            if wire is not None and event.event_type.name == "FALLING_EDGE":
                edges.append((event.timestamp_ns / 1e9, wire))
        return edges


def request_wiegand_lines(chip: str, d0_line: int, d1_line: int, consumer: str) -> Any:
    """A libgpiod request for falling edges on D0 and D1 (pulled up: the wires idle high)."""
    try:
        import gpiod
        from gpiod.line import Bias, Direction, Edge
    except ImportError:
        raise OSError("a Wiegand reader on GPIO needs libgpiod's Python binding: pip install gpiod") from None
    settings = gpiod.LineSettings(direction=Direction.INPUT, edge_detection=Edge.FALLING, bias=Bias.PULL_UP)
    try:
        return gpiod.request_lines(chip, consumer=consumer, config={(d0_line, d1_line): settings})
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot open GPIO chip {chip} lines D0={d0_line} D1={d1_line}: {exc}") from None


class WiegandReader:
    """A Wiegand reader whose edges come from `edges` (`GpiodEdges` at a door)."""

    def __init__(self, name: str, edges: GpiodEdges, gap_s: float = FRAME_GAP_S) -> None:
        self.name = name
        self.edges = edges
        self._frames = PulseFrames(gap_s)
        self._ready: deque[WiegandPulses | CardReadError] = deque()
        self._last_seen = 0.0  # our clock when the open frame's last edge arrived

    def read(self, timeout: float | None = None) -> Credential | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            now = time.monotonic()
            left = None if deadline is None else deadline - now
            if left is not None and left <= 0:
                return None
            if self._frames.open:  # wait no longer than it takes the open frame to end
                quiet = self._last_seen + self._frames.gap_s - now
                left = quiet if left is None else min(left, quiet)
            edges = self.edges.wait(max(0.0, left) if left is not None else None)
            for when, wire in edges:
                self._add(self._frames.edge(when, wire))
            if edges:
                self._last_seen = time.monotonic()
            elif self._frames.open and time.monotonic() - self._last_seen >= self._frames.gap_s:
                self._add(self._frames.end())
        item = self._ready.popleft()
        if isinstance(item, CardReadError):
            raise item
        return decode(item)

    def _add(self, item: WiegandPulses | CardReadError | None) -> None:
        if item is not None:
            self._ready.append(item)

    def close(self) -> None:
        release = getattr(self.edges.request, "release", None)
        if release is not None:
            release()


def open_wiegand_reader(name: str, chip: str, d0_line: int, d1_line: int, gap_s: float) -> WiegandReader:
    request = request_wiegand_lines(chip, d0_line, d1_line, f"diaolou-{name}")
    return WiegandReader(name, GpiodEdges(request, d0_line, d1_line), gap_s)


class RecordedLines:
    """A recording standing in for a libgpiod line request (tests, the bench): the two methods the
    reader calls, over real `gpiod.EdgeEvent`s; waiting on an empty recording blocks like a quiet line."""

    def __init__(self, d0_line: int, d1_line: int) -> None:
        self.d0_line, self.d1_line = d0_line, d1_line
        self.events: list[Any] = []
        self._seq = 0
        self._quiet = threading.Event()  # never set

    def edge(self, ns: int, line: int, falling: bool = True) -> None:
        import gpiod

        kind = gpiod.EdgeEvent.Type.FALLING_EDGE if falling else gpiod.EdgeEvent.Type.RISING_EDGE
        self._seq += 1
        self.events.append(gpiod.EdgeEvent(kind.value, ns, line, self._seq, self._seq))

    def frame(self, bits: str, start_s: float, spacing_s: float = 0.002) -> None:
        """A reader sending `bits`: each a 50 us low pulse on D0 or D1, `spacing_s` apart."""
        for i, bit in enumerate(bits):
            ns = int((start_s + i * spacing_s) * 1e9)
            line = self.d1_line if bit == "1" else self.d0_line
            self.edge(ns, line)
            self.edge(ns + 50_000, line, falling=False)

    def wait_edge_events(self, timeout: float | None = None) -> bool:
        if not self.events:
            self._quiet.wait(timeout)
        return bool(self.events)

    def read_edge_events(self, max_events: int | None = None) -> list[Any]:
        n = len(self.events) if max_events is None else max_events
        out, self.events = self.events[:n], self.events[n:]
        return out
