"""Motion at night, on short stretches of the night test set (tests/support/night.py, made at run
time from the real footage): a dark, noisy person is seen, lighting changes are not motion.

The full comparison (every variant, the whole footage, events, Frigate's detector beside ours) is
bench/night.py; these are the behaviours it relies on, a few seconds of footage each.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.motion.detector import MotionDetector, MotionResult, MotionSettings
from tests.support.night import NIGHT, Variant, frames

# The first visitor walks in at 6.5 s and reaches the table at ~9 s (tests/test_motion.py WALKING
# (60, 90)); nobody is in view from 1.0 to 4.8 s (EMPTY (10, 48)).
WALK_IN = (6.6, 9.0)
EMPTY_END = 4.8


def run(
    variant: str | Variant, start: float, end: float, settings: MotionSettings | None = None
) -> dict[float, MotionResult]:
    detector = MotionDetector(settings or MotionSettings())
    return {t: detector.update(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), t) for t, frame in frames(variant, start, end)}


def share(results: dict[float, MotionResult], a: float, b: float) -> float:
    window = [r.motion for t, r in results.items() if a <= t <= b]
    assert window
    return sum(window) / len(window)


@pytest.mark.parametrize("name", ["night", "noisy", "dark"])
def test_a_dark_noisy_person_walking_in_is_seen(name: str) -> None:
    results = run(name, 0.0, WALK_IN[1] + 0.1)
    assert any(r.night for r in results.values())  # the picture is dark: night mode
    assert share(results, *WALK_IN) >= 0.8, name
    # ... and the empty lane before them is quiet once the noise is learnt (calibration is the
    # first second; the per-region noise estimate settles within the next).
    assert share(results, 2.0, EMPTY_END) <= 0.1, name


def test_colour_to_infrared_switch_does_not_alert() -> None:
    # Dim colour until 3.0 s, then the camera switches to a grey, noisier, brighter IR picture.
    switch = Variant(
        "ir-test", gamma=1.3, gain=0.35, noise=5.0, grey_after=3.0, ir_gamma=1.2, ir_gain=0.45, ir_noise=10.0, seed=9
    )
    results = run(switch, 0.0, EMPTY_END)
    assert not any(r.motion or r.boxes for t, r in results.items() if t >= 1.2)


@pytest.mark.parametrize("factor", [1.4, 0.6, 2.0])
def test_brightness_step_does_not_alert(factor: float) -> None:
    # A porch light switched on (or off) in the dark, empty lane at 3.0 s.
    step = Variant("step-test", **NIGHT, steps=(factor,), step_at=(3.0,), seed=10)  # type: ignore[arg-type]
    results = run(step, 0.0, WALK_IN[1] + 0.1)
    assert not any(r.motion or r.boxes for t, r in results.items() if 1.2 <= t <= EMPTY_END)
    # ... and the lane is still watched afterwards: a person walking in under the new light is seen.
    assert share(results, *WALK_IN) >= 0.8


def test_at_night_the_person_detector_gets_larger_regions() -> None:
    """The pipeline hands the detector twice the margin around night motion, and larger crops."""
    from edge_agent.config.schema import DetectConfig
    from edge_agent.pipeline import REGION_MIN, CameraAnalyzer
    from tests.test_pipeline import FakeDetector, scene

    def regions(darken: float) -> list[tuple[bool, float]]:
        analyzer = CameraAnalyzer("cam", DetectConfig(), FakeDetector(), "UTC")
        rng = np.random.default_rng(3)
        out = []
        for i, x in enumerate([None] * 8 + list(range(100, 400, 30))):
            img = (scene(rng, x).astype(np.float32) * darken).astype(np.uint8)
            result = analyzer.process(img, i / 5)
            out += [(result.motion.night, min(r.width for r in result.regions)) for _ in result.regions[:1]]
        return out

    day, night = regions(1.0), regions(0.15)
    assert day and night
    assert not any(n for n, _ in day) and all(n for n, _ in night)
    assert min(w for _, w in day) >= REGION_MIN
    assert min(w for _, w in night) >= 1.5 * REGION_MIN
