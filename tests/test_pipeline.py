"""Motion gates the detector: a still scene costs no inference, a confirmed person is followed on
motion between detector runs (a walking person is looked at on one frame in three, a person
standing still every recheck_seconds), new motion is looked at at once, and full_frame runs it on
every frame."""

from __future__ import annotations

import numpy as np
import pytest

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


class TwoPeopleDetector(FakeDetector):
    """Finds each bright rectangle separately (columns of bright pixels split by a gap)."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        self.calls.append(image.shape[:2])
        bright = image[..., 2] > 200
        columns = np.nonzero(bright.sum(axis=0) > 20)[0]
        found = []
        for part in np.split(columns, np.nonzero(np.diff(columns) > 1)[0] + 1) if len(columns) else []:
            ys = np.nonzero(bright[:, part].any(axis=1))[0]
            found.append(Detection(Box(part.min(), ys.min(), part.max() + 1, ys.max() + 1), 0.9, "person"))
        return found


def scene(rng: np.random.Generator, *person_xs: int | None) -> np.ndarray:
    img = np.full((360, 640, 3), 150, np.uint8)  # a wall, lighter than the person in grey
    img[200:, :] = 60  # a floor
    img = np.clip(img + rng.normal(0, 2, img.shape[:2])[..., None], 0, 255).astype(np.uint8)
    for x in person_xs:
        if x is not None:
            img[120:300, x : x + 50] = (40, 60, 230)
    return img


def run(
    settings: DetectConfig, positions: list[int | None], detector: FakeDetector | None = None
) -> tuple[CameraAnalyzer, FakeDetector, list[int]]:
    return run_many(settings, [(x,) for x in positions], detector)


def run_many(
    settings: DetectConfig, positions: list[tuple[int | None, ...]], detector: FakeDetector | None = None
) -> tuple[CameraAnalyzer, FakeDetector, list[int]]:
    detector = detector or FakeDetector()
    analyzer = CameraAnalyzer("cam", settings, detector, "UTC")
    rng = np.random.default_rng(3)
    runs_per_frame = []
    for i, xs in enumerate(positions):
        before = analyzer.detector_runs
        analyzer.process(scene(rng, *xs), i / 5)
        runs_per_frame.append(analyzer.detector_runs - before)
    return analyzer, detector, runs_per_frame


def test_still_scene_never_runs_the_detector() -> None:
    _, detector, _ = run(DetectConfig(), [None] * 50)
    assert detector.calls == []


def test_walking_then_standing_person_is_followed_not_detected_every_frame() -> None:
    walk: list[int | None] = [None] * 10 + [100 + 15 * k for k in range(20)]  # 4 s walking in
    stand: list[int | None] = [400] * 50  # then 10 s standing still
    analyzer, detector, runs = run(DetectConfig(recheck_seconds=2.0), walk + stand)
    assert sum(runs[:10]) == 0
    assert runs[10:13] == [1, 1, 1]  # the detector looks at every frame until the track is confirmed
    walking = runs[13:30]
    # Then the walking person is followed on motion: looked at on one frame in three, never twice
    # in a row and never three frames in a row without a look.
    assert 5 <= sum(walking) <= 7, walking
    assert all(walking[k : k + 3].count(1) == 1 for k in range(0, len(walking) - 2)), walking
    standing = runs[45:]  # once the motion of the arrival has been absorbed into the background
    assert 2 <= sum(standing) <= 5  # about one re-check every 2 s over 7 s, not 35 runs
    person = [t for t in analyzer.tracker.tracks if t.confirmed]
    assert len(person) == 1  # still tracked as the same person
    assert all(h <= 360 and w <= 640 for h, w in detector.calls)
    assert min(w for _, w in detector.calls) < 640  # regions, not the whole frame


def test_full_frame_runs_every_frame() -> None:
    _, detector, runs = run(DetectConfig(full_frame=True), [None] * 20)
    assert runs == [1] * 20 and set(detector.calls) == {(360, 640)}


def test_someone_new_is_looked_at_at_once_while_a_person_is_followed() -> None:
    empty: list[tuple[int | None, ...]] = [(None,)] * 10
    first = [(100 + 10 * k,) for k in range(15)]  # 3 s: the first person walks in and is confirmed
    both = [(250 + 10 * k, 560 - 10 * k) for k in range(10)]  # a second walks in from the right
    analyzer, _, runs = run_many(DetectConfig(), [*empty, *first, *both], TwoPeopleDetector())
    assert sum(runs[18:25]) <= 3  # the first person alone is followed, not detected every frame
    assert all(r >= 1 for r in runs[25:28])  # the new motion is looked at at once, until confirmed
    people = [t for t in analyzer.tracker.tracks if t.confirmed]
    assert len(people) == 2 and len({t.id for t in people}) == 2


def test_a_followed_person_who_turns_back_keeps_their_track() -> None:
    there = [100 + 20 * k for k in range(15)]  # 3 s to the right, fast
    back = [there[-1] - 20 * k for k in range(1, 16)]  # then 3 s back to the left
    analyzer, _, runs = run(DetectConfig(), [None] * 10 + [*there, *back])
    (track,) = analyzer.tracker.tracks
    assert track.confirmed and track.id == 1 and track.last_seen >= 7.4
    last_t = (10 + len(there) + len(back) - 1) / 5
    assert track.predicted(last_t).x1 == pytest.approx(back[-1], abs=25)  # followed to where they are
    assert sum(runs) < 0.6 * len(runs)
