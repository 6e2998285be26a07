"""The camera at a door: who swiped (a picture with every decision and alarm) and tailgating.

Where the picture comes from: the newest frame the camera's analysis has decoded, held here by
reference. Not decoded again from the ring buffer's segment at that time: the segment being
written is an fMP4 that is complete only when it closes (up to a segment's length after the
swipe), and decoding the main stream from its last keyframe costs up to a GOP of full-resolution
frames per swipe (hundreds of ms of a small ARM core and tens of MB for a 4 MP camera, a
decoder opened each time). The analysis frame is decoded already, at most 1/fps older than the
swipe (0.2 s at 5 fps, 0.6 s while the scene is idle), at the detection size (~640 px: a face at
a door is recognisable), and holding it costs one frame of memory.

Off the decision path: the door's controller only takes a reference (`grab`), emits its event
and queues the reference (`ship`). A thread of this door converts it to BGR, encodes the JPEG,
writes it under snapshots/<camera>/<day>/ (aged out with the camera's other snapshots) and puts
it in the outbox after the event, on the topic person events' snapshots use. The queue is
bounded: swipes faster than JPEGs are made drop snapshots (logged), they never hold up a door.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from contract import SnapshotRef
from contract.messages import MAX_PAYLOAD_BYTES
from edge_agent.events.snapshot_layout import snapshot_dir
from edge_agent.gate.doorline import TailgateCounter, Tailgating

if TYPE_CHECKING:  # a gate box loads NumPy and the tracker only with the camera's analysis
    import numpy as np

    from edge_agent.track.tracker import Track

log = logging.getLogger("diaolou.gate")

# A frame older than this at a swipe means the analysis has stalled (camera offline): it shows
# someone else, so the event goes without a picture rather than with a wrong one.
MAX_FRAME_AGE_S = 2.0
QUEUE_MAX = 8  # snapshots waiting to be encoded (a JPEG of a 640 px frame takes ~5-20 ms)
# The snapshot thread runs at a lower priority (Linux nice is per thread): on a box whose cores are
# busy (detection, recording) a card arriving while a JPEG is made gets the core first.
SNAPSHOT_NICE = 10


class Picture(Protocol):
    """A decoded frame (`capture.frames.AnalysisFrame`): BGR on demand, safe from this thread."""

    def image_from_another_thread(self) -> np.ndarray: ...


@dataclass(frozen=True)
class Grab:
    frame: Picture
    t: float  # when the analysis had it


@dataclass(frozen=True)
class Finding:
    tailgating: Tailgating
    grab: Grab | None  # the frame on which one too many crossed


@dataclass(frozen=True)
class _Job:
    event_id: str
    path: Path  # relative to the storage root
    grab: Grab


class DoorCamera:
    """One door's view through `camera`: fed by the camera's analysis (`frame`, `tracks`), asked by
    the door's controller (`grab`, `ship`, `granted`, `findings`). `send` puts a snapshot in the
    outbox (`OutboxWriter.snapshot`)."""

    def __init__(
        self,
        door: str,
        camera: str,
        root: Path,
        send: Callable[[str, bytes], object],
        counter: TailgateCounter | None = None,
    ) -> None:
        self.door = door
        self.camera = camera
        self.root = root
        self.send = send
        self.counter = counter
        self._latest: Grab | None = None
        self._findings: list[Finding] = []
        self._lock = threading.Lock()
        self._jobs: queue.Queue[_Job | None] = queue.Queue(QUEUE_MAX)
        self._idle = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self.shipped = 0
        self.dropped = 0

    # The camera's analysis thread.

    def frame(self, frame: Picture, t: float) -> None:
        """Every decoded frame (idle ones too): only the reference is kept."""
        self._latest = Grab(frame, t)

    def tracks(self, t: float, tracks: Iterable[Track], width: int, height: int) -> None:
        """The tracker's tracks after the analysed frame at `t` (passed to `frame` just before)."""
        if self.counter is None:
            return
        found = self.counter.observe(t, tracks, width, height)
        if found is not None:
            with self._lock:
                self._findings.append(Finding(found, self._latest))

    # The door's thread.

    def grab(self, at: float) -> Grab | None:
        """The newest frame, if it is recent enough to show the moment `at`. A reference only."""
        latest = self._latest
        if latest is None or abs(at - latest.t) > MAX_FRAME_AGE_S:
            return None
        return latest

    def snapshot_ref(self, event_id: str, at: float) -> SnapshotRef:
        return SnapshotRef(path=str(snapshot_dir(self.camera, at) / f"{event_id}.jpg"))

    def ship(self, event_id: str, ref: SnapshotRef, grab: Grab) -> None:
        """Queue the picture of an emitted event; never blocks."""
        with self._idle:
            self._pending += 1
        try:
            self._jobs.put_nowait(_Job(event_id, Path(ref.path), grab))
        except queue.Full:
            self._done()
            self.dropped += 1
            log.warning("door %s: snapshot of event %s dropped: %d still being encoded", self.door, event_id, QUEUE_MAX)

    def granted(self, at: float, until: float) -> None:
        if self.counter is not None:
            self.counter.grant(at, until)

    def findings(self) -> list[Finding]:
        """Tailgating seen since the last call."""
        with self._lock:
            found, self._findings = self._findings, []
        return found

    # The snapshot thread.

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"doorcam-{self.door}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), SNAPSHOT_NICE)
        except OSError as exc:  # not fatal: the pictures are made at the door's priority
            log.warning("door %s: snapshot thread keeps its priority: %s", self.door, exc)
        while (job := self._jobs.get()) is not None:
            try:
                self._write_and_send(job)
            except Exception:  # one bad frame or a full disk must not end the door's pictures
                log.exception("door %s: snapshot of event %s not made", self.door, job.event_id)
            finally:
                self._done()

    def _write_and_send(self, job: _Job) -> None:
        # Imported here: a gate box without door cameras never loads OpenCV.
        from edge_agent.events.snapshots import write_jpeg

        path = self.root / job.path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = write_jpeg(path, job.grab.frame.image_from_another_thread(), MAX_PAYLOAD_BYTES)
        self.send(job.event_id, data)
        self.shipped += 1

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """True once every queued snapshot is made and sent (tests, shutdown)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        self.wait_idle(timeout)
        try:
            self._jobs.put(None, timeout=timeout)
        except queue.Full:
            log.error("door %s: snapshot thread did not drain its queue", self.door)
        self._thread.join(timeout)
