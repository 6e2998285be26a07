"""Motion gates the detector: a still scene costs no inference, a person standing still is
re-checked every recheck_seconds, and full_frame runs it on every frame."""

from __future__ import annotations

import numpy as np

from edge_agent.config.schema import DetectConfig
from edge_agent.detectors.base import Box, Detection
from edge_agent.pipeline import CameraAnalyzer


class FakeDetector:
    """Finds the bright rectangle we paint as a 'person' in whatever crop it is given."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.calls.append(image.shape[:2])
        ys, xs = np.nonzero(image[..., 2] > 200)
        if len(xs) < 50:
            return []
        return [Detection(Box(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), 0.9, "person")]


def scene(rng: np.random.Generator, person_x: int | None) -> np.ndarray:
    img = np.full((360, 640, 3), 90, np.uint8)
    img[200:, :] = 60  # a floor
    img = np.clip(img + rng.normal(0, 2, img.shape[:2])[..., None], 0, 255).astype(np.uint8)
    if person_x is not None:
        img[120:300, person_x : person_x + 50] = (40, 60, 230)
    return img


def run(settings: DetectConfig, positions: list[int | None]) -> tuple[CameraAnalyzer, FakeDetector, list[int]]:
    detector = FakeDetector()
    analyzer = CameraAnalyzer("cam", settings, detector, "UTC")
    rng = np.random.default_rng(3)
    runs_per_frame = []
    for i, x in enumerate(positions):
        before = analyzer.detector_runs
        analyzer.process(scene(rng, x), i / 5)
        runs_per_frame.append(analyzer.detector_runs - before)
    return analyzer, detector, runs_per_frame


def test_still_scene_never_runs_the_detector() -> None:
    _, detector, _ = run(DetectConfig(), [None] * 50)
    assert detector.calls == []


def test_walking_then_standing_person_is_rechecked_not_detected_every_frame() -> None:
    walk: list[int | None] = [None] * 10 + [100 + 15 * k for k in range(20)]  # 4 s walking in
    stand: list[int | None] = [400] * 50  # then 10 s standing still
    analyzer, detector, runs = run(DetectConfig(recheck_seconds=2.0), walk + stand)
    assert sum(runs[:10]) == 0
    assert all(r >= 1 for r in runs[12:30])  # every walking frame is looked at
    standing = runs[45:]  # once the motion of the arrival has been absorbed into the background
    assert 2 <= sum(standing) <= 5  # about one re-check every 2 s over 7 s, not 35 runs
    person = [t for t in analyzer.tracker.tracks if t.confirmed]
    assert len(person) == 1  # still tracked as the same person
    assert all(h <= 360 and w <= 640 for h, w in detector.calls)
    assert min(w for _, w in detector.calls) < 640  # regions, not the whole frame


def test_full_frame_runs_every_frame() -> None:
    _, detector, runs = run(DetectConfig(full_frame=True), [None] * 20)
    assert runs == [1] * 20 and set(detector.calls) == {(360, 640)}
