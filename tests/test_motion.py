"""Motion detection: the ONNX graph against its numpy reference, the detector on synthetic and real
footage, and the regions the person detector runs on."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import av
import cv2
import numpy as np
import onnx
import pytest

from edge_agent.detectors.base import Box
from edge_agent.motion.detector import (
    MotionDetector,
    MotionResult,
    MotionSettings,
    analysis_size,
    ignore_roi,
    make_session,
    mask_boxes,
    merge_boxes,
)
from edge_agent.motion.reference import MotionParams, blur, motion_step
from edge_agent.motion.regions import detection_regions
from models.motion_graph import (
    CELL,
    IR_VERSION,
    OPSET,
    build_motion_graph,
    motion_graph_bytes,
    motion_graph_sha256,
    noise_grid_shape,
)

REPO = Path(__file__).resolve().parents[1]
FPS = 5.0  # analysed frames per second (the detection stream's default)
W, H = 640, 360  # the detection stream's default analysis frame (DetectConfig.width = 640)

# The real footage (768x432, 10 fps, 139 s): people walk in one at a time, stand at a table for
# 7-20 s, walk out. Stretches below are 10-fps frame numbers, found by looking at the frames
# (contact sheets every 2 s, then every 4 frames around each entry and exit).
# Nobody in view, and no shadow on the floor either; starting a second or more after each exit.
EMPTY = [(10, 48), (210, 216), (462, 494), (712, 734), (880, 906), (1210, 1224), (1372, 1392)]
# Someone walking in or out.
WALKING = [
    (60, 90),
    (176, 204),
    (226, 250),
    (430, 452),
    (504, 528),
    (680, 700),
    (746, 766),
    (846, 870),
    (920, 946),
    (1176, 1200),
    (1234, 1258),
    (1340, 1362),
]
# Hand-labelled person boxes (x1, y1, x2, y2 at 640x360) of people walking, read off a 40-px grid.
LABELLED = {
    70: (295, 75, 425, 360),
    186: (385, 20, 525, 330),
    236: (265, 55, 435, 360),
    440: (450, 8, 610, 330),
    516: (310, 20, 450, 360),
    690: (410, 5, 610, 330),
}


# --- helpers ------------------------------------------------------------------------------------
def graph_step(
    session: object,
    frame: np.ndarray,
    bg: np.ndarray,
    previous: np.ndarray,
    age: np.ndarray,
    evidence: np.ndarray,
    noise: np.ndarray,
    roi: np.ndarray,
    p: MotionParams,
) -> list[np.ndarray]:
    h, w = frame.shape
    feed = {
        "frame": frame.reshape(1, 1, h, w),
        "background": bg.reshape(1, 1, h, w),
        "previous": previous.reshape(1, 1, h, w),
        "motion_age": age.reshape(1, 1, h, w),
        "evidence": evidence.reshape(1, 1, h, w),
        "noise": noise.reshape(1, 1, *noise.shape),
        "roi": roi.reshape(1, 1, h, w),
        "params": p.as_array(),
    }
    out: list[np.ndarray] = session.run(None, feed)  # type: ignore[attr-defined]
    return [o.reshape(o.shape[2:]) if o.ndim == 4 else o for o in out]


def run(detector: MotionDetector, frames: list[np.ndarray], t0: float = 0.0) -> list[MotionResult]:
    return [detector.update(f, t0 + i / FPS) for i, f in enumerate(frames)]


def read_footage(path: Path, every: int = 2) -> list[tuple[int, np.ndarray]]:
    """(10-fps frame number, 640x360 BGR) for every 2nd frame: the 5 fps detection stream."""
    out = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % every == 0:
                out.append((i, cv2.resize(frame.to_ndarray(format="bgr24"), (W, H), interpolation=cv2.INTER_AREA)))
    return out


@pytest.fixture(scope="module")
def footage_frames(footage: Path) -> list[tuple[int, np.ndarray]]:
    return read_footage(footage)


@pytest.fixture(scope="module")
def empty_scene(footage_frames: list[tuple[int, np.ndarray]]) -> np.ndarray:
    """A real frame with nobody in view (BGR 640x360)."""
    return dict(footage_frames)[20]


@pytest.fixture(scope="module")
def footage_results(footage_frames: list[tuple[int, np.ndarray]]) -> dict[int, MotionResult]:
    detector = MotionDetector(MotionSettings())
    return {i: detector.update(frame, i / 10) for i, frame in footage_frames}


def noisy(frame: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(frame + rng.normal(0.0, sigma, frame.shape), 0, 255).astype(np.uint8)


def with_person(scene: np.ndarray, x: int, y: int, w: int = 40, h: int = 110) -> np.ndarray:
    """The scene with a dark, textured 'person' (a rounded rectangle) at (x, y)."""
    out = scene.copy()
    rng = np.random.default_rng(x * 1000 + y)
    patch = rng.integers(20, 60, (h, w, 3), dtype=np.uint8)
    out[y : y + h, x : x + w] = patch
    return out


# --- the graph --------------------------------------------------------------------------------
def test_graph_is_valid_small_and_opset_17() -> None:
    model = build_motion_graph()
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == IR_VERSION == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)] and OPSET == 17
    assert [i.name for i in model.graph.input] == [
        "frame",
        "background",
        "previous",
        "motion_age",
        "evidence",
        "noise",
        "roi",
        "params",
    ]
    assert [o.name for o in model.graph.output] == [
        "mask",
        "cells",
        "new_background",
        "new_previous",
        "new_motion_age",
        "new_evidence",
        "new_noise",
        "fraction",
        "gain",
        "level",
    ]
    assert len(motion_graph_bytes()) < 8192  # a few constants: no weights, nothing to commit


def test_graph_build_is_reproducible_across_processes() -> None:
    assert build_motion_graph().SerializeToString(deterministic=True) == motion_graph_bytes()
    code = "from models.motion_graph import motion_graph_sha256; print(motion_graph_sha256())"
    shas = set()
    for seed in ("0", "12345"):  # different hash seeds: no dict/set order leaks into the bytes
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
        )
        shas.add(out.stdout.strip())
    assert shas == {motion_graph_sha256()}
    assert motion_graph_sha256() == hashlib.sha256(motion_graph_bytes()).hexdigest()


def test_blur_is_exact_and_binomial() -> None:
    # An impulse spreads as the outer product of [1 4 6 4 1]/16; edges are replicated.
    frame = np.zeros((16, 16), dtype=np.uint8)
    frame[8, 8] = 255
    b = blur(frame)
    k = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16
    np.testing.assert_array_equal(b[6:11, 6:11], (255 * np.outer(k, k)).astype(np.float32))
    flat = np.full((9, 9), 77, dtype=np.uint8)
    assert np.all(blur(flat) == 77)  # edge padding: no darkening at the border


STEP_CASES = [
    # (name, params): the fixed threshold; the noise-driven threshold; fast rates; absorb at once;
    # a dark scene (floor scaled down, temporal integration on)
    ("fixed", MotionParams(20.0, 4.0, 0.05, 0.01, 0.05, 10, dark_level=0.0)),
    ("noise-driven", MotionParams(2.0, 4.0, 0.05, 0.01, 0.05, 10)),
    ("fast", MotionParams(12.5, 3.0, 0.5, 0.25, 0.3, 3)),
    ("absorb-1", MotionParams(20.0, 0.0, 1.0, 1.0, 0.0, 1)),
    ("dark", MotionParams(20.0, 4.0, 0.05, 0.01, 0.05, 10, dark_level=255.0, floor_min=0.1)),
]


@pytest.mark.parametrize(("name", "params"), STEP_CASES, ids=[c[0] for c in STEP_CASES])
def test_graph_matches_reference_step_by_step_on_random_frames(name: str, params: MotionParams) -> None:
    """Same inputs, one step: given the graph's gain and level (sums over the whole image, which
    agree with the reference's to float32 precision), everything is bit-identical except the
    noise grid and the 5x5 evidence mean (sums in another order), which agree to float32
    precision."""
    session = make_session()
    rng = np.random.default_rng(7)
    h, w = 72, 128
    roi = np.ones((h, w), dtype=np.float32)
    roi[10:30, 40:90] = 0  # an ignore polygon's hole
    for step in range(12):
        # Smooth scene + noise + a few bright/dark blobs, against a background that is close.
        base = cv2.GaussianBlur(rng.integers(0, 256, (h, w)).astype(np.float32), (0, 0), 3) * 2 - 128
        clean = np.clip(base + rng.normal(0, 6, (h, w)), 0, 255).astype(np.uint8)
        bg = (blur(clean) + rng.normal(0, 4, (h, w))).astype(np.float32)
        frame = clean.copy()
        for _ in range(3):
            y, x = rng.integers(0, h - 12), rng.integers(0, w - 12)
            frame[y : y + 12, x : x + 12] = rng.integers(0, 256)
        # The previous frame: the clean scene, so that the blobs stirred and the rest is static.
        previous = blur(clean)
        age = rng.integers(0, 12, (h, w)).astype(np.float32)
        evidence = rng.normal(0, 3, (h, w)).astype(np.float32)
        noise = rng.uniform(0, 8, noise_grid_shape(h, w)).astype(np.float32)
        out = graph_step(session, frame, bg, previous, age, evidence, noise, roi, params)
        mask, cells, new_bg, new_previous, new_age, new_evidence, new_noise, fraction, gain, level = out
        free = motion_step(frame, bg, previous, age, evidence, noise, roi, params)
        assert float(gain[0]) == pytest.approx(free.gain, rel=1e-5)
        assert float(level[0]) == pytest.approx(free.level, rel=1e-5)
        ref = motion_step(frame, bg, previous, age, evidence, noise, roi, params, float(gain[0]), float(level[0]))
        # The evidence's 5x5 mean is summed in another order: a pixel exactly at the weak threshold
        # may fall on the other side (none in practice; allow one in ten thousand).
        assert np.mean(mask != ref.mask) <= 1e-4, f"{name} step {step}"
        assert np.abs(cells - ref.cells).max() <= 1e-3
        assert np.mean(new_bg != ref.background) <= 1e-3
        assert np.mean(new_age != ref.motion_age) <= 1e-3
        assert np.mean(new_evidence != ref.evidence) <= 1e-3
        np.testing.assert_array_equal(new_previous, ref.previous)
        assert fraction[0] == pytest.approx(ref.fraction, abs=1e-4)
        np.testing.assert_allclose(new_noise, ref.noise, rtol=1e-5, atol=1e-5)
        assert 0 < ref.fraction < 1  # the case exercises both sides of the threshold
    assert cells.shape == (h // CELL, w // CELL)


def test_graph_matches_reference_free_running_on_real_frames(footage_frames: list[tuple[int, np.ndarray]]) -> None:
    """Both run on their own state for 60 real frames (a person walks in): no drift."""
    session = make_session()
    params = MotionSettings().params()
    w, h = analysis_size(W, H, 320)
    frames = [
        cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (w, h), interpolation=cv2.INTER_AREA)
        for i, f in footage_frames
        if 20 <= i < 140
    ]
    roi = ignore_roi([[(0.0, 0.0), (0.3, 0.0), (0.3, 0.4), (0.0, 0.4)]], w, h)
    bg_ref = bg_onnx = prev_ref = prev_onnx = blur(frames[0])
    age_ref = age_onnx = np.zeros((h, w), dtype=np.float32)
    ev_ref = ev_onnx = np.zeros((h, w), dtype=np.float32)
    noise_ref = noise_onnx = np.zeros(noise_grid_shape(h, w), dtype=np.float32)
    max_bg_diff = max_noise_diff = 0.0
    moving = 0
    for frame in frames[1:]:
        ref = motion_step(frame, bg_ref, prev_ref, age_ref, ev_ref, noise_ref, roi, params)
        mask, cells, bg_onnx, prev_onnx, age_onnx, ev_onnx, noise_onnx, fraction, _, _ = graph_step(
            session, frame, bg_onnx, prev_onnx, age_onnx, ev_onnx, noise_onnx, roi, params
        )
        np.testing.assert_array_equal(mask, ref.mask)
        np.testing.assert_array_equal(cells, ref.cells)
        np.testing.assert_array_equal(age_onnx, ref.motion_age)
        assert fraction[0] == np.float32(ref.fraction)
        max_bg_diff = max(max_bg_diff, float(np.abs(bg_onnx - ref.background).max()))
        max_noise_diff = max(max_noise_diff, float(np.abs(noise_onnx - ref.noise).max()))
        bg_ref, prev_ref, age_ref, ev_ref = ref.background, ref.previous, ref.motion_age, ref.evidence
        noise_ref = ref.noise
        moving += int(ref.mask.any())
    assert max_bg_diff <= 1e-4
    assert max_noise_diff <= 1e-4
    assert moving >= 20  # the person walking in was seen: the comparison covered motion


# --- the detector on synthetic scenes -----------------------------------------------------------
@pytest.mark.parametrize("sigma", [3.0, 6.0])
def test_still_scene_with_sensor_noise_gives_no_motion(empty_scene: np.ndarray, sigma: float) -> None:
    rng = np.random.default_rng(int(sigma))
    detector = MotionDetector(MotionSettings())
    results = run(detector, [noisy(empty_scene, sigma, rng) for _ in range(60)])
    assert results[0].recalibrating  # the first frame only builds the background
    settled = [r for r in results if not r.recalibrating]
    assert len(settled) >= 50
    assert not any(r.motion for r in settled)
    assert max(r.fraction for r in settled) < 0.001


def test_heavy_noise_raises_the_threshold(empty_scene: np.ndarray) -> None:
    """Spatially correlated noise (what a night image looks like after the camera's denoiser and
    the encoder) that the fixed threshold alone would report as motion everywhere."""
    rng = np.random.default_rng(3)

    def night(frame: np.ndarray) -> np.ndarray:
        dark = (frame.astype(np.float32) * 0.35)[:, :, 1]
        grain = cv2.GaussianBlur(rng.normal(0, 1, dark.shape).astype(np.float32), (0, 0), 2.5)
        out: np.ndarray = np.clip(dark + grain * 90, 0, 255).astype(np.uint8)  # ~ sigma 10 per pixel
        return out

    frames = [night(empty_scene) for _ in range(80)]
    # dark_level 0: a fixed floor, not scaled down in the dark picture
    fixed = run(MotionDetector(MotionSettings(threshold=12.0, noise_factor=0.0, dark_level=0.0)), frames)
    adaptive_detector = MotionDetector(MotionSettings(threshold=12.0))
    adaptive = run(adaptive_detector, frames)
    assert sum(r.motion for r in fixed[-40:]) >= 30  # without adaptation: noise is motion
    assert not any(r.motion for r in adaptive[-40:])
    # The noise estimate is what raised the threshold.
    assert adaptive_detector.noise * MotionSettings().noise_factor > 12.0


def test_moving_object_gets_a_box_around_it(empty_scene: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    detector = MotionDetector(MotionSettings())
    run(detector, [noisy(empty_scene, 3, rng) for _ in range(10)])
    hits = 0
    for k in range(25):
        x, y = 60 + 20 * k, 60  # 20 px per frame at 5 fps: a walk across the picture, along the wall
        result = detector.update(noisy(with_person(empty_scene, x, y), 3, rng), 2.0 + k / FPS)
        truth = Box(x, y, x + 40, y + 110)
        assert not result.recalibrating
        assert result.motion
        best = max(result.boxes, key=lambda b: b.iou(truth))
        assert best.iou(truth) > 0.5, (k, best, truth)
        # The box covers the object (the dilation and the blur add a few pixels around it).
        assert best.x1 <= x + 2 and best.y1 <= y + 2 and best.x2 >= x + 38 and best.y2 >= y + 108
        hits += 1
        # Nothing else moves: at most a trace where it was a frame ago (the background keeps it out).
        others = [b for b in result.boxes if b is not best]
        assert all(b.iou(truth) > 0 or b.area < 0.25 * truth.area for b in others)
    assert hits == 25


def test_gray_and_bgr_input_give_the_same_result(empty_scene: np.ndarray) -> None:
    frames = [empty_scene, empty_scene, with_person(empty_scene, 300, 200)]
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    a = run(MotionDetector(MotionSettings(recalibrate_seconds=0.0)), frames)
    b = run(MotionDetector(MotionSettings(recalibrate_seconds=0.0)), grey)
    assert a[-1].boxes == b[-1].boxes and a[-1].motion
    np.testing.assert_array_equal(a[-1].mask, b[-1].mask)
    assert a[-1].mask.shape == (180, 320) and a[-1].scale == (2.0, 2.0)
    assert a[-1].cells.shape == (180 // CELL, 320 // CELL) and a[-1].cells.max() > 0


@pytest.mark.parametrize("change", ["gain x1.6", "offset +60", "darker x0.5"])
def test_global_brightness_change_recalibrates_without_boxes(empty_scene: np.ndarray, change: str) -> None:
    rng = np.random.default_rng(5)
    settings = MotionSettings()
    detector = MotionDetector(settings)
    before = run(detector, [noisy(empty_scene, 3, rng) for _ in range(15)])
    assert not before[-1].recalibrating and not any(r.motion for r in before)
    f = empty_scene.astype(np.float32)
    lit = {"gain x1.6": f * 1.6, "offset +60": f + 60, "darker x0.5": f * 0.5}[change]
    lit_scene = np.clip(lit, 0, 255).astype(np.uint8)
    t0 = 15 / FPS
    after = [detector.update(noisy(lit_scene, 3, rng), t0 + k / FPS) for k in range(20)]
    # Either most of the picture changed or the global gain jumped (the gain model follows a
    # brightness factor, so a pure gain changes few pixels): both recalibrate.
    jump = max(after[0].gain, 1 / after[0].gain) > settings.gain_jump
    assert after[0].recalibrating and (after[0].fraction > settings.lightning_fraction or jump)
    assert not any(r.boxes or r.motion for r in after)  # no alert for a lighting change
    window = int(settings.recalibrate_seconds * FPS)
    assert all(r.recalibrating for r in after[:window])
    assert not any(r.recalibrating for r in after[window + 1 :])  # then back to normal ...
    person = detector.update(with_person(lit_scene, 300, 150), t0 + 20 / FPS)
    assert person.motion and not person.recalibrating  # ... and still sees someone


def test_ignore_polygon_masks_motion_inside_it(empty_scene: np.ndarray) -> None:
    # The right third of the picture is a road: ignored.
    road = [(2 / 3, 0.0), (1.0, 0.0), (1.0, 1.0), (2 / 3, 1.0)]
    cars = [with_person(empty_scene, 440 + 12 * k, 120, w=80, h=60) for k in range(10)]  # inside
    both = [with_person(car, 60 + 20 * k, 200) for k, car in enumerate(cars)]  # and a person outside
    only_car = run(MotionDetector(MotionSettings(masks=[road])), [empty_scene] * 10 + cars)[10:]
    assert not any(r.motion for r in only_car)
    assert max(r.fraction for r in only_car) == 0.0  # the fraction counts the analysed area only
    with_walker = run(MotionDetector(MotionSettings(masks=[road])), [empty_scene] * 10 + both)[10:]
    assert all(r.motion for r in with_walker)
    for r in with_walker:
        assert all(b.x2 <= 2 / 3 * W + 4 for b in r.boxes)  # no box reaches into the road
    # Without the polygon the car is seen.
    plain = run(MotionDetector(MotionSettings()), [empty_scene] * 10 + cars)[10:]
    assert all(r.motion for r in plain)


def test_ignore_roi_rasterises_normalised_polygons() -> None:
    roi = ignore_roi([[(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)]], 320, 180)
    assert roi.dtype == np.float32 and roi.shape == (180, 320)
    assert np.all(roi[:, :160] == 1) and np.all(roi[:, 160:] == 0)  # pixel centres decide
    tri = ignore_roi([[(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]], 100, 100)
    assert 0.45 < 1 - tri.mean() < 0.55
    assert np.all(ignore_roi([], 64, 48) == 1)


def test_something_that_stops_is_absorbed_and_leaves_no_ghost(empty_scene: np.ndarray) -> None:
    settings = MotionSettings()
    detector = MotionDetector(settings)
    run(detector, [empty_scene] * 10)
    parked = with_person(empty_scene, 300, 150, w=100, h=60)  # a car drives in and parks
    stays = [detector.update(parked, 2.0 + k / FPS) for k in range(20)]
    n = settings.absorb_frames
    assert all(r.motion for r in stays[: n - 1])
    assert not any(r.motion for r in stays[n + 1 :])  # part of the scene now
    gone = [detector.update(empty_scene, 6.0 + k / FPS) for k in range(20)]  # it leaves
    assert gone[0].motion  # the change is seen ...
    assert not any(r.motion for r in gone[n + 1 :])  # ... and the place it left is forgotten


def test_gap_in_time_and_new_frame_size_restart_the_background(empty_scene: np.ndarray) -> None:
    detector = MotionDetector(MotionSettings())
    run(detector, [empty_scene] * 10)
    moved = with_person(empty_scene, 300, 150)
    after_gap = detector.update(moved, 2.0 + 60.0)  # reconnected a minute later
    assert after_gap.recalibrating and not after_gap.boxes
    back_in_time = detector.update(moved, 1.0)
    assert back_in_time.recalibrating
    small = cv2.resize(empty_scene, (320, 180))
    resized = detector.update(small, 1.2)  # the sub stream's resolution changed
    assert resized.recalibrating and resized.mask.shape == (180, 320) and resized.scale == (1.0, 1.0)


def test_boxes_are_in_the_input_frames_coordinates(empty_scene: np.ndarray) -> None:
    big = cv2.resize(empty_scene, (1280, 720))
    detector = MotionDetector(MotionSettings(recalibrate_seconds=0.0))
    run(detector, [big] * 3)
    result = detector.update(with_person(big, 800, 300, w=80, h=220), 1.0)
    assert result.scale == (4.0, 4.0)
    (box,) = result.boxes
    assert box.iou(Box(800, 300, 880, 520)) > 0.6


def test_one_session_is_shared_and_cameras_run_in_parallel(empty_scene: np.ndarray) -> None:
    a, b = MotionDetector(MotionSettings()), MotionDetector(MotionSettings(threshold=30.0))
    assert a.session() is b.session() is MotionDetector.session()
    frames = [empty_scene] * 8 + [with_person(empty_scene, 40 + 30 * k, 150) for k in range(12)]
    expected = [(r.motion, r.boxes, r.fraction) for r in run(MotionDetector(MotionSettings()), frames)]
    outputs: dict[int, list[tuple[bool, list[Box], float]]] = {}

    def camera(n: int) -> None:
        detector = MotionDetector(MotionSettings())
        outputs[n] = [(r.motion, r.boxes, r.fraction) for r in run(detector, frames)]

    threads = [threading.Thread(target=camera, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(outputs[n] == expected for n in range(4))  # no state leaks between cameras


def test_settings_are_frozen_validated_and_hashable() -> None:
    s = MotionSettings(masks=[[(0, 0), (1, 0), (1, 1)]])
    assert s.masks == (((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)),)
    assert hash(s) == hash(MotionSettings(masks=(((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)),)))
    with pytest.raises(AttributeError):
        s.threshold = 3.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="normalised"):
        MotionSettings(masks=[[(0, 0), (640, 0), (640, 360)]])  # pixel coordinates by mistake
    with pytest.raises(ValueError, match="3 points"):
        MotionSettings(masks=[[(0, 0), (1, 1)]])
    with pytest.raises(ValueError):
        MotionSettings(lightning_fraction=0.0)
    with pytest.raises(ValueError):
        MotionDetector(MotionSettings()).update(np.zeros((10, 10, 4), dtype=np.uint8), 0.0)


def test_mask_boxes_drop_specks_before_merging() -> None:
    # A scatter of single changed pixels (dilated: 5x5 specks) 8 px apart: merged by distance, their
    # areas summed to 1,600, far over min_pixels; they are noise, not an object, and give no box.
    mask = np.zeros((180, 320), dtype=np.uint8)
    for y in range(40, 100, 8):
        for x in range(40, 100, 8):
            mask[y - 2 : y + 3, x - 2 : x + 3] = 255
    assert mask_boxes(mask, min_pixels=115, merge_px=9.6, scale=(2.0, 2.0)) == []
    # An object of the same extent is one box, in frame coordinates; a speck beside it is left out.
    mask[120:160, 200:220] = 255
    mask[120:125, 240:245] = 255
    assert mask_boxes(mask, min_pixels=115, merge_px=9.6, scale=(2.0, 2.0)) == [Box(400.0, 240.0, 440.0, 320.0)]


def test_merge_boxes() -> None:
    boxes = [(0, 0, 10, 10), (14, 0, 20, 10), (100, 100, 110, 110), (21, 5, 30, 30)]
    merged, areas = merge_boxes(boxes, [100, 60, 100, 225], distance=5)
    # The first two are 4 apart: merged; the grown box is then 1 from the fourth: merged too.
    assert merged == [[0.0, 0.0, 30.0, 30.0], [100.0, 100.0, 110.0, 110.0]]
    assert areas == [385.0, 100.0]
    assert merge_boxes(boxes, [1, 1, 1, 1], distance=0)[0] == [
        [0.0, 0.0, 10.0, 10.0],
        [14.0, 0.0, 20.0, 10.0],
        [21.0, 5.0, 30.0, 30.0],
        [100.0, 100.0, 110.0, 110.0],
    ]
    # Many components (a noisy frame) go through the vectorised pass: same result as pairwise.
    rng = np.random.default_rng(0)
    xy = rng.integers(0, 300, (200, 2))
    many = [(x, y, x + 4, y + 4) for x, y in xy.tolist()]
    fast = merge_boxes(many, [16] * 200, distance=3)
    slow: list[list[float]] = []
    for box in many:  # brute force: merge into anything close, repeat until stable
        slow.append([float(v) for v in box] + [16.0])
    changed = True
    while changed:
        changed = False
        for i in range(len(slow)):
            for j in range(len(slow) - 1, i, -1):
                a, b = slow[i], slow[j]
                if max(a[0], b[0]) - min(a[2], b[2]) <= 3 and max(a[1], b[1]) - min(a[3], b[3]) <= 3:
                    slow[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]), a[4] + b[4]]
                    del slow[j]
                    changed = True
    slow.sort(key=lambda it: (it[1], it[0]))
    assert fast == ([s[:4] for s in slow], [s[4] for s in slow])


# --- the real footage -----------------------------------------------------------------------------
def share_with_motion(results: dict[int, MotionResult], stretches: list[tuple[int, int]]) -> float:
    frames = [results[i] for a, b in stretches for i in range(a, b + 1, 2)]
    return sum(r.motion for r in frames) / len(frames)


def test_footage_motion_when_people_walk_not_when_the_room_is_empty(
    footage_results: dict[int, MotionResult],
) -> None:
    walking = share_with_motion(footage_results, WALKING)
    empty = share_with_motion(footage_results, EMPTY)
    assert walking >= 0.9, walking
    assert empty <= 0.2, empty
    # Each stretch on its own: every walk is seen, no empty stretch is mostly motion.
    for stretch in WALKING:
        assert share_with_motion(footage_results, [stretch]) >= 0.75, stretch
    for stretch in EMPTY:
        assert share_with_motion(footage_results, [stretch]) <= 0.5, stretch
    # No lighting false alarm: the only recalibration is the first second.
    recalibrating = sorted(i for i, r in footage_results.items() if r.recalibrating)
    assert recalibrating and recalibrating[-1] < 10


def test_footage_boxes_are_around_the_walking_person(footage_results: dict[int, MotionResult]) -> None:
    for i, label in LABELLED.items():
        truth = Box(*label)
        result = footage_results[i]
        assert result.boxes, i
        best = max(result.boxes, key=lambda b: b.iou(truth))
        assert best.iou(truth) >= 0.4, (i, best, truth)
        cx, cy = truth.center
        assert best.x1 <= cx <= best.x2 and best.y1 <= cy <= best.y2


def test_footage_is_deterministic(footage_frames: list[tuple[int, np.ndarray]]) -> None:
    def once() -> list[tuple[bool, list[Box]]]:
        detector = MotionDetector(MotionSettings())
        return [(r.motion, r.boxes) for r in (detector.update(f, i / 10) for i, f in footage_frames[:150])]

    assert once() == once()


# --- regions for the person detector -----------------------------------------------------------
def test_regions_pad_merge_grow_and_clip() -> None:
    fw, fh = 640, 360
    # Two nearby boxes: their padded versions overlap, so one region (the union, padded).
    regions = detection_regions([Box(100, 100, 150, 200), Box(160, 110, 200, 210)], [], fw, fh, pad=8, min_size=0)
    assert regions == [Box(92, 92, 208, 218)]
    # Far apart: two regions.
    regions = detection_regions([Box(10, 10, 60, 60)], [Box(400, 200, 450, 300)], fw, fh, pad=4, min_size=0)
    assert regions == [Box(6, 6, 64, 64), Box(396, 196, 454, 304)]
    # A small box is grown to the minimum size around its centre ...
    (r,) = detection_regions([Box(300, 150, 310, 160)], [], fw, fh, pad=0, min_size=96)
    assert (r.width, r.height) == (96, 96) and r.center == (305, 155)
    # ... shifted inside the frame at an edge ...
    (r,) = detection_regions([Box(630, 350, 640, 360)], [], fw, fh, pad=2, min_size=96)
    assert r == Box(544, 264, 640, 360)
    # ... and capped at the frame's size.
    (r,) = detection_regions([Box(10, 10, 20, 20)], [], 200, 80, pad=0, min_size=128)
    assert r == Box(0, 0, 128, 80)
    # Growing makes two regions overlap: merged into one.
    regions = detection_regions([Box(100, 100, 110, 110), Box(160, 100, 170, 110)], [], fw, fh, pad=0, min_size=96)
    assert len(regions) == 1 and regions[0].x1 <= 100 and regions[0].x2 >= 170
    # Padding is clipped; fractional boxes round outwards; boxes outside the frame vanish.
    regions = detection_regions([Box(-20.5, 5.2, 30.4, 40.6), Box(700, 10, 720, 20)], [], fw, fh, pad=0, min_size=0)
    assert regions == [Box(0, 5, 31, 41)]
    assert detection_regions([], [], fw, fh, pad=16, min_size=96) == []
    # A tracked person with no motion (they stopped) still gets a region.
    assert detection_regions([], [Box(200, 50, 260, 250)], fw, fh, pad=10, min_size=0) == [Box(190, 40, 270, 260)]
    with pytest.raises(ValueError):
        detection_regions([], [], 0, 360, pad=0, min_size=0)


def test_regions_from_motion_boxes_on_footage(footage_results: dict[int, MotionResult]) -> None:
    """What the pipeline does: regions cover the labelled person and stay smaller than the frame."""
    for i, label in LABELLED.items():
        regions = detection_regions(footage_results[i].boxes, [], W, H, pad=16, min_size=128)
        truth = Box(*label)
        assert any(
            r.x1 <= truth.x1 + 20 and r.y1 <= truth.y1 + 20 and r.x2 >= truth.x2 - 20 and r.y2 >= truth.y2 - 20
            for r in regions
        ), (i, regions)
        assert sum(r.area for r in regions) < 0.75 * W * H
