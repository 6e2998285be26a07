"""One camera's analysis: motion -> regions -> person detector -> tracker -> events.

The same code runs live in the agent and offline in `diaolou-agent detect`, so what the offline
command reports is what the box would have raised.

Motion gates detection: the detector looks only at regions built from motion boxes and from
tracked people (merged, padded, at least the detector's useful size), never at a still scene.
Between detector runs a confirmed person is followed on motion (edge_agent/track/follow.py): a
walking person is looked at on one frame in three, a person standing still every
`recheck_seconds`, new motion at once. With `full_frame: true` it looks at the whole frame every
analysed frame instead. At night (a dark picture) every look is at the whole frame, the detector
also looks every `night_sweep_seconds` without motion, and a person it found is looked at on every
frame until confirmed (edge_agent/lowlight.py says why).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge_agent.config.schema import DetectConfig
from edge_agent.detectors.base import Box, Detection, Detector
from edge_agent.events.person import EventBuilder, EventChange
from edge_agent.lowlight import NightSweep
from edge_agent.motion.detector import MotionDetector, MotionResult
from edge_agent.motion.regions import detection_regions
from edge_agent.motion.settings import motion_settings
from edge_agent.track.follow import plan_detection
from edge_agent.track.tracker import Tracker
from edge_agent.track.zones import Polygon, foot_point

REGION_PAD = 24  # px around motion: a person's limbs move before the torso does
REGION_MIN = 96  # px: smaller crops are upscaled past what the detectors resolve
DUPLICATE_IOU = 0.5


class FrameLike(Protocol):
    @property
    def gray(self) -> np.ndarray: ...

    @property
    def image(self) -> np.ndarray: ...


@dataclass(frozen=True)
class FrameResult:
    t: float
    detections: list[Detection]
    regions: list[Box]  # where the detector looked; [] = it did not run
    motion: MotionResult
    changes: list[EventChange]


class CameraAnalyzer:
    def __init__(self, camera: str, settings: DetectConfig, detector: Detector, timezone: str) -> None:
        self.camera = camera
        self.settings = settings
        self.detector = detector
        self.motion = MotionDetector(motion_settings(settings.motion))
        self.tracker = Tracker(settings.min_score, settings.score_window, settings.min_hits)
        self.object_masks = [Polygon(p) for p in settings.object_masks]
        self._size = (0, 0)
        # A crop smaller than the detector's smallest window finds nothing (HOG needs 64x128).
        min_input = getattr(detector, "min_input", (0, 0))
        self.region_min = max(REGION_MIN, *min_input)
        # The night looks at the whole frame (edge_agent/lowlight.py) are for models that scale what
        # they get to a fixed input: for them the whole frame costs what a crop does. A detector
        # that scans windows at the picture's own scale (HOG) pays per pixel and, on a whole noisy
        # frame, finds people in the noise: it keeps the regions around motion.
        self.whole_frame_at_night = tuple(min_input) == (0, 0)
        self.events = EventBuilder(camera, settings, timezone, detector.name, lambda: self._size)
        self.sweep = NightSweep(settings.night_sweep_seconds if self.whole_frame_at_night else 0.0)
        self.detector_runs = 0
        self.sweeps = 0
        self.frames = 0

    def process(self, frame: np.ndarray | FrameLike, t: float) -> FrameResult:
        """One analysed frame: a BGR array, or a frame with `.gray` and a lazily converted `.image`."""
        gray = frame if isinstance(frame, np.ndarray) else frame.gray

        def bgr() -> np.ndarray:
            return frame if isinstance(frame, np.ndarray) else frame.image

        height, width = gray.shape[:2]
        self._size = (width, height)
        self.frames += 1
        motion = self.motion.update(gray, t)
        regions = self._regions(motion, t, width, height)
        detections: list[Detection] = []
        if regions:
            detections = self._detect(bgr(), regions, width, height)
        update = self.tracker.update(detections, t, checked=None if self.settings.full_frame else regions)
        self.tracker.expire(t, older_than=self.settings.end_after_seconds)
        self.tracker.drop_out_of_view(t, width, height)
        changes = self.events.process(t, bgr, update, self.tracker.tracks)
        return FrameResult(t, detections, regions, motion, changes)

    def finish(self) -> list[EventChange]:
        return self.events.finish()

    def _regions(self, motion: MotionResult, t: float, width: int, height: int) -> list[Box]:
        if self.settings.full_frame:
            return [Box(0, 0, width, height)]
        if self.sweep.due(t, motion.night):
            self.sweeps += 1
            return [Box(0, 0, width, height)]
        # At night a person the detector found where motion is weak is looked at on every frame
        # until their track is confirmed (or ends), not only where motion is.
        plan = plan_detection(
            self.tracker.tracks, motion.boxes, t, self.settings.recheck_seconds, unconfirmed_always=motion.night
        )
        motion_boxes = [] if motion.recalibrating else plan.motion
        if not motion_boxes and not plan.tracked:
            return []
        if motion.night and self.whole_frame_at_night:
            # A crop enlarges the night's noise with the person; the whole frame, shrunk to the
            # detector's input, averages it out (edge_agent/lowlight.py has the figures).
            return [Box(0, 0, width, height)]
        return detection_regions(motion_boxes, plan.tracked, width, height, REGION_PAD, self.region_min)

    def _detect(self, image: np.ndarray, regions: list[Box], width: int, height: int) -> list[Detection]:
        found: list[Detection] = []
        for region in regions:
            x1, y1 = int(region.x1), int(region.y1)
            x2, y2 = round(region.x2), round(region.y2)
            crop = image[y1:y2, x1:x2]
            if crop.size == 0:
                continue
            self.detector_runs += 1
            for det in self.detector.detect(crop):
                box = det.box.shift(x1, y1)
                if any(m.contains(*foot_point(box), width, height) for m in self.object_masks):
                    continue
                found.append(Detection(box, det.score, det.label))
        return _dedupe(found)


def _dedupe(detections: list[Detection]) -> list[Detection]:
    """Overlapping regions can see the same person twice: keep the best of near-identical boxes."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: d.score, reverse=True):
        if all(det.label != k.label or det.box.iou(k.box) < DUPLICATE_IOU for k in kept):
            kept.append(det)
    return kept
