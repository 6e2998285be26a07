"""The built-in HOG people detector: the project's ONNX graph against OpenCV's own HOG, and real footage.

Tolerances: the graph computes OpenCV's HOG exactly except for the orientation, where OpenCV uses its
fastAtan polynomial (<= 0.0095 degrees off, 5e-4 of a 20-degree bin) and the graph the Atan op; plus
float32 rounding. Measured on the images and a vtest frame, grey and BGR (16k windows): margins within
0.0022 of OpenCV's (correlation > 0.9999998) over margins spanning -10..4.7, descriptor entries (0..~0.5)
within 7e-4. The tests allow 0.01 and 2e-3: ~3-4x the worst measured, and still ~1% of the 0..1 margin
band where detections are decided.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edge_agent.detectors.base import Box, Detection, Detector
from edge_agent.detectors.hog import (
    LABEL,
    HogDetection,
    HogDetector,
    hog_model_bytes,
    margin_to_score,
    nms,
    score_to_margin,
)
from models.hog_graph import BLOCK_LEN, BLOCKS_X, BLOCKS_Y, NBINS, build_hog_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
IMAGES = SHARED / "images"
VTEST = SHARED / "video" / "vtest.avi"
MARGIN_TOL = 0.01
DESCRIPTOR_TOL = 2e-3

# People in vtest.avi (768x576), labelled by hand: frame -> person boxes (head to feet). All are >= 76 px
# tall: the default pyramid starts at a 128 px window, which holds a ~96 px person.
PEOPLE = {
    0: [(253, 220, 283, 307), (500, 157, 530, 233), (638, 240, 685, 322)],
    600: [(568, 200, 597, 287), (668, 208, 702, 296), (455, 302, 505, 418), (640, 305, 672, 412), (285, 432, 330, 576)],
}
SMALL_PERSON = (600, (188, 145, 215, 213))  # 68 px tall: needs min_size below 128


def _image(name: str) -> np.ndarray:
    path = IMAGES / name
    assert path.exists(), f"shared test image missing: {path}"
    image = cv2.imread(str(path))
    assert image is not None
    return image


def _frames(indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    assert VTEST.exists(), f"shared test video missing: {VTEST}"
    cap = cv2.VideoCapture(str(VTEST))
    try:
        for index in indices:
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = cap.read()
            assert ok, f"cannot read frame {index} of {VTEST}"
            yield index, frame
    finally:
        cap.release()


def _frame(index: int) -> np.ndarray:
    return next(_frames([index]))[1]


@pytest.fixture(scope="module")
def opencv_hog() -> cv2.HOGDescriptor:
    hog = cv2.HOGDescriptor()  # OpenCV's defaults are what the graph reproduces
    hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32))
    return hog


@pytest.fixture(scope="module")
def detector() -> HogDetector:
    built: Detector = HogDetector()  # mypy checks the protocol here
    assert built.name == "hog-people"
    assert isinstance(built, HogDetector)
    return built


def _session(channels: int) -> ort.InferenceSession:
    model = build_hog_model(channels=channels, with_blocks=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tensor = image[None, None] if image.ndim == 2 else image.transpose(2, 0, 1)[None]
    score, blocks = session.run(None, {"image": tensor.astype(np.float32)})
    return np.asarray(score)[0, 0], np.asarray(blocks)[0]


def _opencv_margins(hog: cv2.HOGDescriptor, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every window's margin from OpenCV (a hit threshold nothing falls below): (top-left corners, margins)."""
    locations, weights = hog.detect(image, hitThreshold=-1e9, winStride=(8, 8), padding=(0, 0))
    return np.asarray(locations).reshape(-1, 2), np.asarray(weights).reshape(-1)


def _window_descriptor(blocks: np.ndarray, x: int, y: int) -> np.ndarray:
    """The graph's block grid -> OpenCV's descriptor order for the window at (x, y)."""
    window = blocks[:, y // 8 : y // 8 + BLOCKS_Y, x // 8 : x // 8 + BLOCKS_X]  # [36, by, bx], ch = bin*4 + cy*2 + cx
    return window.reshape(NBINS, 2, 2, BLOCKS_Y, BLOCKS_X).transpose(4, 3, 2, 1, 0).reshape(-1)


def _still_and_video_inputs() -> list[tuple[str, int]]:
    return [("basketball1.png", 1), ("messi5.jpg", 1), ("messi5.jpg", 3), ("astronaut.png", 3), ("vtest:600", 3)]


def _input(name: str, channels: int) -> np.ndarray:
    image = _frame(int(name.split(":")[1])) if name.startswith("vtest:") else _image(name)
    return image if channels == 3 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


# --- the graph -----------------------------------------------------------------------------------------


def test_graph_is_deterministic_valid_and_dynamic() -> None:
    first = build_hog_model().SerializeToString()
    assert first == build_hog_model().SerializeToString()
    assert first == hog_model_bytes(1)
    model = onnx.load_from_string(first)
    onnx.checker.check_model(model, full_check=True)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == [1, 1, "height", "width"]
    assert len(model.graph.initializer) > 0 and not any(i.data_location for i in model.graph.initializer)
    with pytest.raises(ValueError):
        build_hog_model(channels=2)


@pytest.mark.parametrize(("name", "channels"), _still_and_video_inputs())
def test_window_margins_match_opencv(opencv_hog: cv2.HOGDescriptor, name: str, channels: int) -> None:
    image = _input(name, channels)
    score, _ = _run(_session(channels), image)
    corners, expected = _opencv_margins(opencv_hog, image)
    # The same windows: every 8 px step of a 64x128 window wholly inside the image.
    assert score.shape == ((image.shape[0] - 128) // 8 + 1, (image.shape[1] - 64) // 8 + 1)
    assert score.size == expected.size
    ours = score[corners[:, 1] // 8, corners[:, 0] // 8]
    assert np.abs(ours - expected).max() < MARGIN_TOL
    assert np.corrcoef(ours, expected)[0, 1] > 0.99999
    # The decision OpenCV makes at its own boundary, window by window, away from the tolerance band.
    clear = np.abs(expected) > MARGIN_TOL
    assert np.array_equal(ours[clear] >= 0, expected[clear] >= 0)


@pytest.mark.parametrize(("name", "channels"), _still_and_video_inputs()[::2])
def test_descriptor_matches_opencv(opencv_hog: cv2.HOGDescriptor, name: str, channels: int) -> None:
    image = _input(name, channels)
    _, blocks = _run(_session(channels), image)
    assert blocks.shape[0] == BLOCK_LEN
    height, width = image.shape[:2]
    corners = [(0, 0), (64, 96), ((width - 64) // 8 * 8, (height - 128) // 8 * 8), (width // 16 * 8, height // 16 * 8)]
    computed = opencv_hog.compute(image, winStride=(8, 8), padding=(0, 0), locations=corners)
    expected = np.asarray(computed).reshape(len(corners), -1)
    for (x, y), want in zip(corners, expected, strict=True):
        got = _window_descriptor(blocks, x, y)
        assert got.shape == want.shape == (BLOCKS_X * BLOCKS_Y * BLOCK_LEN,)
        assert np.abs(got - want).max() < DESCRIPTOR_TOL, (x, y)


def test_graph_accepts_any_size(detector: HogDetector) -> None:
    # Not a multiple of 8: the last rows and columns that do not make a block are ignored, as OpenCV does.
    image = np.random.default_rng(1).integers(0, 256, (131, 75), dtype=np.uint8)
    assert detector.score_map(image).shape == (1, 2)


# --- the detector --------------------------------------------------------------------------------------


def test_detections_match_opencv_on_a_still_image(detector: HogDetector, opencv_hog: cv2.HOGDescriptor) -> None:
    # basketball1.png is the one still image where OpenCV's detectMultiScale fires. Its hit is the chair
    # and arms beside the right-hand man, not a person: both people are so close that a window around
    # them would be taller than the image. What this checks is that the graph reproduces OpenCV.
    image = _image("basketball1.png")
    rects, _ = opencv_hog.detectMultiScale(image, winStride=(8, 8), padding=(0, 0), scale=1.05)
    assert len(rects) >= 1
    ours = detector.detect(image)
    for x, y, w, h in rects:
        assert max(d.box.iou(Box(x, y, x + w, y + h)) for d in ours) > 0.5


def test_detections_match_opencv_on_vtest(detector: HogDetector, opencv_hog: cv2.HOGDescriptor) -> None:
    total = 0
    for index, frame in _frames([0, 200, 400, 600, 790]):
        rects, _ = opencv_hog.detectMultiScale(frame, winStride=(8, 8), padding=(0, 0), scale=1.05)
        ours = detector.detect(frame)
        for x, y, w, h in rects:
            total += 1
            assert max((d.box.iou(Box(x, y, x + w, y + h)) for d in ours), default=0.0) > 0.5, (index, (x, y, w, h))
    assert total >= 10


def _finds(detections: list[Detection], person: tuple[int, int, int, int], min_score: float) -> bool:
    """A detection window holds the person: contains its centre and most of it, and is not far too big."""
    target = Box(*person)
    cx, cy = target.center
    for det in detections:
        box = det.box
        inside = Box(max(box.x1, target.x1), max(box.y1, target.y1), min(box.x2, target.x2), min(box.y2, target.y2))
        if (
            det.score >= min_score
            and box.x1 <= cx <= box.x2
            and box.y1 <= cy <= box.y2
            and inside.area >= 0.7 * target.area
            and box.height <= 2.5 * target.height
        ):
            return True
    return False


def test_finds_the_people_in_vtest(detector: HogDetector) -> None:
    for index, frame in _frames(sorted(PEOPLE)):
        found = detector.detect(frame)
        for person in PEOPLE[index]:
            assert _finds(found, person, detector.threshold), (index, person, [d.box.as_list() for d in found])
        # Most of them clearly: at or above the config's default min_score to confirm a person.
        clear = sum(_finds(found, person, 0.6) for person in PEOPLE[index])
        assert clear >= len(PEOPLE[index]) - 1


def test_color_mode_finds_the_same_people() -> None:
    detector = HogDetector(color=True)
    index = 600
    found = detector.detect(_frame(index))
    for person in PEOPLE[index]:
        assert _finds(found, person, detector.threshold), person


def test_min_size_below_the_window_finds_small_people(detector: HogDetector) -> None:
    index, person = SMALL_PERSON
    frame = _frame(index)
    assert not _finds(detector.detect(frame), person, detector.threshold)
    small = HogDetector(min_size=80)
    assert small.levels(768, 576)[0] == pytest.approx(80 / 128)
    assert _finds(small.detect(frame), person, small.threshold)


@pytest.mark.parametrize("kind", ["flat", "horizontal", "diagonal", "noise"])
def test_nothing_on_synthetic_images(detector: HogDetector, kind: str) -> None:
    height, width = 360, 640
    if kind == "flat":
        grey = np.full((height, width), 128, np.float64)
    elif kind == "horizontal":
        grey = np.tile(np.linspace(0, 255, width), (height, 1))
    elif kind == "diagonal":
        grey = np.add.outer(np.arange(height), np.arange(width)) * (255 / (height + width))
    else:
        grey = np.random.default_rng(0).uniform(0, 255, (height, width))
    image = cv2.cvtColor(grey.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    assert detector.detect(image) == []


def test_detection_fields_and_threshold(detector: HogDetector) -> None:
    frame = _frame(600)
    found = detector.detect(frame)
    assert found
    height, width = frame.shape[:2]
    for det in found:
        assert isinstance(det, HogDetection)
        assert det.label == LABEL == "person"
        assert 0.0 < det.score < 1.0
        assert det.score == pytest.approx(margin_to_score(det.margin))
        assert det.score >= detector.threshold - 1e-9
        assert 0 <= det.box.x1 < det.box.x2 <= width and 0 <= det.box.y1 < det.box.y2 <= height
        # A window: 1:2, from 128 px up.
        assert det.box.height == pytest.approx(2 * det.box.width, rel=0.02)
        assert det.box.height >= 127.9
    # After NMS no two kept boxes overlap by more than the NMS threshold.
    for i, a in enumerate(found):
        for b in found[i + 1 :]:
            assert a.box.iou(b.box) <= detector.nms_iou + 1e-9
    # A stricter threshold keeps a subset: the detections at or above it.
    strict = HogDetector(threshold=0.8).detect(frame)
    assert {d.box for d in strict} == {d.box for d in found if d.score >= 0.8}


def test_score_mapping() -> None:
    # Anchored on the config defaults: detect.threshold 0.45 ~ OpenCV's boundary, min_score 0.6 ~ margin 0.5.
    assert margin_to_score(0.0) == pytest.approx(0.45, abs=0.002)
    assert margin_to_score(0.5) == pytest.approx(0.6, abs=0.002)
    assert margin_to_score(3.0) > 0.95 and margin_to_score(-3.0) < 0.05
    assert margin_to_score(-1e4) == 0.0 and margin_to_score(1e4) == 1.0  # no overflow
    for score in (0.1, 0.45, 0.6, 0.9):
        assert margin_to_score(score_to_margin(score)) == pytest.approx(score)
    with pytest.raises(ValueError):
        score_to_margin(1.0)
    assert HogDetector(threshold=0.0).margin_threshold == -math.inf  # every window, as the ONNX detectors allow
    with pytest.raises(ValueError):
        HogDetector(threshold=1.0)


def test_inputs(detector: HogDetector) -> None:
    frame = _frame(0)
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    # Grey in, same result as BGR in (the detector converts BGR to grey itself).
    assert [d.box for d in detector.detect(grey)] == [d.box for d in detector.detect(frame)]
    # Smaller than one window at min_size: nothing to score, no error.
    assert detector.detect(frame[:100, :300]) == []
    assert detector.levels(63, 500) == []
    assert detector.min_input == (64, 128)
    assert HogDetector(min_size=96).min_input == (48, 96)
    with pytest.raises(ValueError):
        detector.detect(frame.astype(np.float32))
    with pytest.raises(ValueError):
        detector.detect(np.zeros((200, 200, 4), np.uint8))


def test_nms() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]], dtype=np.float64)
    scores = np.array([0.5, 0.9, 0.3, 0.1])
    assert nms(boxes, scores, 0.45) == [1, 2]
    assert nms(boxes, scores, 0.99) == [1, 0, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.45) == []


def test_shared_model_and_concurrent_detect() -> None:
    assert hog_model_bytes(1) is hog_model_bytes(1)
    detector = HogDetector(threads=1)
    frame = _frame(600)
    expected = detector.detect(frame)
    results: list[list[Detection]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(detector.detect(frame))
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [expected] * 3
