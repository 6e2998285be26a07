"""A reader without hardware: frames pushed into a queue come out of `read` as from a real door.

Tests, the bench and a box being set up before its readers are wired use it; it goes through
the same `decode` as every driver, so a bad frame fails here exactly as it would at the door.
"""

from __future__ import annotations

import queue

from edge_agent.gate.credential import Credential
from edge_agent.gate.reader import Frame, decode

# A simulator nobody reads must not grow without bound.
MAX_QUEUED = 1000


class SimulatorReader:
    """`push(frame)` from any thread; `read()` from the gate loop."""

    def __init__(self, name: str = "simulator") -> None:
        self.name = name
        self._frames: queue.Queue[Frame] = queue.Queue(maxsize=MAX_QUEUED)
        self._closed = False

    def push(self, frame: Frame) -> None:
        """Queue a frame; raises queue.Full when MAX_QUEUED frames are waiting."""
        if self._closed:
            raise RuntimeError(f"reader {self.name} is closed")
        self._frames.put_nowait(frame)

    def read(self, timeout: float | None = None) -> Credential | None:
        if self._closed:
            return None
        try:
            frame = self._frames.get(timeout=timeout)
        except queue.Empty:
            return None
        return decode(frame)

    def close(self) -> None:
        self._closed = True
