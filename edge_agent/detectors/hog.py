"""The built-in person detector: OpenCV's HOG people SVM as a project-built ONNX graph (models/hog_graph.py).

Works on a fresh box with nothing downloaded. It scores every 8-pixel step of a 64x128 window (a person
of ~96 px with a margin) over an image pyramid, keeps windows above the threshold and removes overlaps by
non-maximum suppression. Boxes are the detection windows, as OpenCV returns them: the person fills
about the middle 3/4 of the box height and half of its width.

Score: the raw SVM margin is unbounded: OpenCV's decision boundary is 0, people in clear view reach
1..4, false hits mostly stay below 0.5 (measured on vtest.avi against OpenCV's grouped detections).
Detections report score = 1 / (1 + exp(-MARGIN_SLOPE * (margin - MARGIN_AT_HALF))), a hand calibration
(there is no labelled set to fit a Platt scaling on) anchored on the config defaults, so that they mean
for HOG what they mean for the other detectors: detect.threshold 0.45 = margin 0, OpenCV's own boundary;
detect.min_score 0.6 = margin 0.5, above most false hits; margin 1 -> 0.73, 2 -> 0.90, 3 -> 0.97.
`HogDetection.margin` keeps the raw margin; `score_to_margin` maps a threshold back.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort

from edge_agent.detectors.base import Box, Detection
from models.hog_graph import STRIDE, WIN_H, WIN_W, build_hog_model

LABEL = "person"
# The calibration's two anchors (see the module docstring): (margin, score).
_BOUNDARY = (0.0, 0.45)
_CLEAR = (0.5, 0.6)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


MARGIN_SLOPE = (_logit(_CLEAR[1]) - _logit(_BOUNDARY[1])) / (_CLEAR[0] - _BOUNDARY[0])  # ~1.21
MARGIN_AT_HALF = _BOUNDARY[0] - _logit(_BOUNDARY[1]) / MARGIN_SLOPE  # ~0.166
MAX_LEVELS = 64  # OpenCV's nlevels: the pyramid cap


def margin_to_score(margin: float) -> float:
    z = MARGIN_SLOPE * (margin - MARGIN_AT_HALF)
    # Two forms so that exp never overflows, whatever the margin.
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def score_to_margin(score: float) -> float:
    if not 0.0 < score < 1.0:
        raise ValueError(f"score must be in (0, 1), not {score}")
    return MARGIN_AT_HALF + _logit(score) / MARGIN_SLOPE


@dataclass(frozen=True)
class HogDetection(Detection):
    """A Detection that also carries the raw SVM margin."""

    margin: float


_models: dict[int, bytes] = {}
_models_lock = threading.Lock()


def hog_model_bytes(channels: int) -> bytes:
    """The serialised graph, built once per process (a build takes ~50 ms and pulls OpenCV's weights)."""
    with _models_lock:
        if channels not in _models:
            _models[channels] = build_hog_model(channels=channels).SerializeToString()
        return _models[channels]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression: indices of kept boxes ([N, 4] x1, y1, x2, y2), best first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        ix = np.clip(np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1]), 0, None)
        inter = ix * iy
        order = rest[inter <= iou * (areas[best] + areas[rest] - inter)]
    return keep


class HogDetector:
    """HOG + linear SVM people detector over an image pyramid.

    threshold: minimum score (0..1, see the module docstring); 0.45 is OpenCV's own boundary (margin 0).
    threads: onnxruntime intra-op threads. scale: pyramid step, as OpenCV's detectMultiScale (1.05;
    1.1 halves the time and misses a few sizes). min_size: smallest person window height to look for,
    in input pixels; below 128 the image is upscaled first (small, far people; costs (128 / min_size)^2).
    max_size: largest window height (None: up to the image height). nms_iou: windows overlapping a
    better one by more than this are dropped. color: use OpenCV's colour gradient (strongest of B, G, R
    per pixel) instead of grey; ~1.7x the time for slightly different margins.
    """

    name = "hog-people"

    def __init__(
        self,
        threshold: float = 0.45,
        threads: int = 1,
        scale: float = 1.05,
        min_size: int = WIN_H,
        max_size: int | None = None,
        nms_iou: float = 0.45,
        color: bool = False,
    ) -> None:
        if scale <= 1.0:
            raise ValueError(f"scale must be > 1, not {scale}")
        if min_size < 16:
            raise ValueError(f"min_size must be >= 16 px, not {min_size}")
        if not 0.0 <= threshold < 1.0:  # the range the ONNX detectors accept
            raise ValueError(f"threshold must be in [0, 1), not {threshold}")
        self.threshold = threshold
        self.margin_threshold = score_to_margin(threshold) if threshold > 0 else -math.inf
        self.scale = scale
        self.min_size = min_size
        self.max_size = max_size
        self.nms_iou = nms_iou
        self.channels = 3 if color else 1
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # EXTENDED fuses the ramp Conv with its Relu; ALL adds NCHWc layout changes that measured slower.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        # Idle worker threads must not spin on a small box that is also decoding and recording.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            hog_model_bytes(self.channels), options, providers=["CPUExecutionProvider"]
        )

    @property
    def min_input(self) -> tuple[int, int]:
        """(width, height): smaller images (or crops) hold no window at min_size and give no detections."""
        factor = self.min_size / WIN_H
        return math.ceil(WIN_W * factor), math.ceil(WIN_H * factor)

    def levels(self, width: int, height: int) -> list[float]:
        """Pyramid factors (input pixels per level pixel); the window at a level is 128 * factor px tall."""
        out: list[float] = []
        factor = self.min_size / WIN_H
        while len(out) < MAX_LEVELS:
            if round(width / factor) < WIN_W or round(height / factor) < WIN_H:
                break
            if self.max_size is not None and WIN_H * factor > self.max_size:
                break
            out.append(factor)
            factor *= self.scale
        return out

    def score_map(self, image: np.ndarray) -> np.ndarray:
        """Raw SVM margins of every window of `image` at its own size: [rows, cols], window (r, c) at
        (8c, 8r), 64x128. `image` is prepared already (grey uint8 HxW, or BGR if color)."""
        if self.channels == 3:
            tensor = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
        else:
            tensor = image[None, None].astype(np.float32)
        scores = np.asarray(self._session.run(["score"], {"image": tensor})[0], dtype=np.float32)
        return scores.reshape(scores.shape[2:])

    def windows(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """All windows above the threshold before NMS: ([N, 4] boxes x1, y1, x2, y2 in input pixels,
        [N] margins)."""
        src = self._prepare(image)
        height, width = src.shape[:2]
        boxes: list[np.ndarray] = []
        margins: list[np.ndarray] = []
        for factor in self.levels(width, height):
            size = (round(width / factor), round(height / factor))
            # OpenCV's detectMultiScale resizes with INTER_LINEAR_EXACT; upscaling has no such precedent.
            interp = cv2.INTER_LINEAR_EXACT if factor > 1 else cv2.INTER_LINEAR
            level = src if size == (width, height) else cv2.resize(src, size, interpolation=interp)
            scores = self.score_map(level)
            rows, cols = np.nonzero(scores >= self.margin_threshold)
            if rows.size == 0:
                continue
            x1 = cols * (STRIDE * factor)
            y1 = rows * (STRIDE * factor)
            boxes.append(np.stack([x1, y1, x1 + WIN_W * factor, y1 + WIN_H * factor], axis=1))
            margins.append(scores[rows, cols].astype(np.float64))
        if not boxes:
            return np.zeros((0, 4)), np.zeros(0)
        all_boxes = np.concatenate(boxes)
        # Rounded level sizes can put a window a fraction of a pixel past the edge.
        np.clip(all_boxes, 0, [width, height, width, height], out=all_boxes)
        return all_boxes, np.concatenate(margins)

    def detect(self, image: np.ndarray) -> list[Detection]:
        boxes, margins = self.windows(image)
        if margins.size == 0:
            return []
        found: list[Detection] = []
        for i in nms(boxes, margins, self.nms_iou):
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            margin = float(margins[i])
            found.append(HogDetection(Box(x1, y1, x2, y2), margin_to_score(margin), LABEL, margin))
        return found

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint8:
            raise ValueError(f"expected a uint8 image, not {image.dtype}")
        if image.ndim == 2:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if self.channels == 3 else image
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a BGR (HxWx3) or grey (HxW) image, not shape {image.shape}")
        return image if self.channels == 3 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
