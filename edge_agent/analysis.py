"""Live analysis for one camera: decode the detection stream, run the pipeline, keep its events.

Runs in its own thread beside the camera's recorder, on its own connection to the detection
stream (the camera's sub stream when it has one), and reconnects on its own: a detection
problem never stops recording.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av

from contract import SnapshotRef
from edge_agent.capture.backoff import Backoff
from edge_agent.capture.frames import AnalysisFrame, iter_frames
from edge_agent.capture.sources import StreamSpec
from edge_agent.capture.stream import StreamEnded, StreamOpenError
from edge_agent.clock import WallClock
from edge_agent.config.schema import CameraConfig
from edge_agent.events.person import EventChange
from edge_agent.events.snapshots import write_snapshot
from edge_agent.events.store import EventStore, LocalEvent
from edge_agent.pipeline import CameraAnalyzer
from edge_agent.track.tracker import Track

log = logging.getLogger(__name__)
LEDGER_SECONDS = 3600.0
# While nothing moves and nobody is tracked, analyse one frame in IDLE_STRIDE (5 fps -> 1.7 fps):
# an idle camera is most of a camera's life, and someone walking in is still seen within 0.6 s,
# after which every frame is analysed again.
IDLE_STRIDE = 3
IDLE_AFTER_FRAMES = 10


class FrameWatcher(Protocol):
    """Something else that uses this camera's frames and tracks (a door it watches: gate/doorcam.py).
    Both calls come from the analysis thread and must return at once."""

    def frame(self, frame: AnalysisFrame, t: float) -> None: ...

    def tracks(self, t: float, tracks: Iterable[Track], width: int, height: int) -> None: ...


@dataclass
class AnalysisStatus:
    state: str = "starting"
    frames: int = 0
    detector_runs: int = 0
    events: int = 0
    last_error: str | None = None


class ActivityLedger:
    """Per analysed frame: was there motion, how many people were tracked. Fills the recorder's
    per-segment motion/persons columns so playback can jump to activity."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: deque[float] = deque()
        self._samples: deque[tuple[bool, int]] = deque()

    def add(self, t: float, moving: bool, persons: int) -> None:
        with self._lock:
            self._times.append(t)
            self._samples.append((moving, persons))
            while self._times and self._times[0] < t - LEDGER_SECONDS:
                self._times.popleft()
                self._samples.popleft()

    def summary(self, start: float, end: float) -> tuple[float, int] | None:
        with self._lock:
            times = list(self._times)
            lo, hi = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
            window = list(self._samples)[lo:hi]
        if not window:
            return None
        return sum(m for m, _ in window) / len(window), max(p for _, p in window)


def save_change(root: Path, store: EventStore, change: EventChange, pre_roll: float, post_roll: float) -> LocalEvent:
    """Persist a person event (and its snapshot) before anything else is done with it."""
    event = change.event
    try:
        files = write_snapshot(root, event)
    except OSError as exc:  # a full disk must not cost the event itself
        log.error("camera %s: snapshot of event %s not written: %s", event.camera, event.id, exc)
        files = None
    snapshot = SnapshotRef(path=files.full, crop=files.crop) if files else None
    local = change.local_event(snapshot, pre_roll, post_roll)
    store.save(local)
    return local


class AnalysisWorker(threading.Thread):
    def __init__(
        self,
        camera: str,
        config: CameraConfig,
        spec: StreamSpec,
        analyzer: CameraAnalyzer,
        clock: WallClock,
        store: EventStore,
        root: Path,
        ledger: ActivityLedger,
        stop: threading.Event,
        watchers: Sequence[FrameWatcher] = (),
    ) -> None:
        super().__init__(name=f"analysis-{camera}", daemon=True)
        self.camera = camera
        self.config = config
        self.spec = spec
        self.analyzer = analyzer
        self.clock = clock
        self.store = store
        self.root = root
        self.ledger = ledger
        self.stop_event = stop
        self.watchers = watchers
        self.status = AnalysisStatus()
        self._seen = 0  # frames handed to analysis
        self._quiet = 0  # analysed frames in a row without motion

    def run(self) -> None:
        backoff = Backoff(self.config.reconnect.initial_seconds, self.config.reconnect.max_seconds)
        detect = self.config.detect
        while not self.stop_event.is_set():
            try:
                frames = iter_frames(
                    self.spec,
                    detect.fps,
                    detect.width,
                    self.config.reconnect.open_timeout_seconds,
                    self.config.reconnect.read_timeout_seconds,
                    loop=not self.spec.live,
                )
                for frame in frames:
                    if self.stop_event.is_set():
                        break
                    if self.status.state != "online":
                        self.status.state, self.status.last_error = "online", None
                    backoff.reset()
                    self.handle(frame, self.clock.now())
                else:
                    raise StreamOpenError(f"{self.spec.display}: detection stream ended")
            except (StreamOpenError, StreamEnded, av.FFmpegError, OSError) as exc:
                self._fail("offline", str(exc))
            except Exception as exc:  # analysis must never take the agent (and its recording) down
                log.exception("camera %s: analysis failed", self.camera)
                self._fail("error", f"{type(exc).__name__}: {exc}")
            if not self.stop_event.is_set():
                self.stop_event.wait(backoff.next_delay())
        for change in self.analyzer.finish():
            self._save(change)
        self.status.state = "stopped"

    def handle(self, frame: AnalysisFrame, now: float) -> None:
        """One decoded frame, received at `now`: analysed unless the scene is idle and it is skipped."""
        self._seen += 1
        for watcher in self.watchers:  # skipped frames too: a door's picture is the newest frame
            watcher.frame(frame, now)
        idle = self._quiet >= IDLE_AFTER_FRAMES and not self.analyzer.tracker.tracks
        if idle and self._seen % IDLE_STRIDE:
            return
        self._process(frame, now)

    def _process(self, frame: AnalysisFrame, t: float) -> None:
        result = self.analyzer.process(frame, t)
        self._quiet = 0 if result.motion.boxes else self._quiet + 1
        self.status.frames += 1
        self.status.detector_runs = self.analyzer.detector_runs
        persons = sum(1 for tr in self.analyzer.tracker.tracks if tr.confirmed and tr.last_seen == t)
        self.ledger.add(t, result.motion.motion, persons)
        for watcher in self.watchers:
            watcher.tracks(t, self.analyzer.tracker.tracks, frame.width, frame.height)
        for change in result.changes:
            self._save(change)

    def _save(self, change: EventChange) -> None:
        try:
            self._store(change)
        except Exception:
            log.exception("camera %s: event %s (%s) not saved", self.camera, change.event.id, change.phase)

    def _store(self, change: EventChange) -> None:
        save_change(
            self.root, self.store, change, self.config.detect.pre_roll_seconds, self.config.detect.post_roll_seconds
        )
        if change.phase == "new":
            self.status.events += 1
            log.info("camera %s: person event %s started", self.camera, change.event.id)

    def _fail(self, state: str, error: str) -> None:
        if self.status.last_error != error:
            log.error("camera %s: analysis: %s", self.camera, error)
        self.status.state, self.status.last_error = state, error
