"""An ONNX person detector driven entirely by its registry entry.

Preprocessing (resize or letterbox, colour order, scale/mean/std) reads only the entry, so a new
model of a known family is a registry change, not code. The decoder is chosen by family
(decoders.py), then class-wise NMS (nms.py), then boxes go back to frame pixels.

Threading: one onnxruntime session per (model file, threads) per process, shared by every camera
(`shared_session`). `InferenceSession.run` is thread-safe and `detect` keeps no state between
calls (buffers are per call, decoder grids are read-only), so concurrent `detect` calls on one
instance need no lock and do not serialise on it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge_agent.detectors.base import Box, Detection
from edge_agent.detectors.decoders import decode
from edge_agent.detectors.nms import DEFAULT_IOU, batched_nms
from models.registry import ModelEntry, ModelError, Preprocess

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Transform:
    """How frame pixels became model-input pixels: model = frame * (sx, sy) + (dx, dy)."""

    sx: float
    sy: float
    dx: float
    dy: float

    def to_frame(self, boxes: FloatArray) -> FloatArray:
        """Model-input boxes [N, 4] back to frame pixels (not clipped)."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, [0, 2]] = (boxes[:, [0, 2]] - self.dx) / self.sx
        out[:, [1, 3]] = (boxes[:, [1, 3]] - self.dy) / self.sy
        return out

    def to_model(self, boxes: FloatArray) -> FloatArray:
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, [0, 2]] = boxes[:, [0, 2]] * self.sx + self.dx
        out[:, [1, 3]] = boxes[:, [1, 3]] * self.sy + self.dy
        return out


def resize_to_input(
    image: npt.NDArray[np.uint8], spec: Preprocess, width: int, height: int
) -> tuple[npt.NDArray[np.uint8], Transform]:
    """Resize a BGR frame to the model's input size as the registry says: `stretch` to the full input,
    or `letterbox_*` keeping the aspect ratio, placed top-left or centred on a `pad_value` canvas."""
    h, w = image.shape[:2]
    if spec.resize == "stretch":
        out = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        return np.asarray(out, dtype=np.uint8), Transform(width / w, height / h, 0.0, 0.0)
    r = min(width / w, height / h)
    nw, nh = min(width, max(1, round(w * r))), min(height, max(1, round(h * r)))
    if spec.resize == "letterbox_top_left":
        dx, dy = 0, 0
    else:
        dx, dy = (width - nw) // 2, (height - nh) // 2
    canvas = np.full((height, width, 3), spec.pad_value, dtype=np.uint8)
    canvas[dy : dy + nh, dx : dx + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    # The exact per-axis scale of the resized content, not `r`: undoes the rounding of nw and nh.
    return canvas, Transform(nw / w, nh / h, float(dx), float(dy))


def preprocess(image: npt.NDArray[np.uint8], entry: ModelEntry) -> tuple[FloatArray, Transform]:
    """BGR uint8 frame -> [1, 3, H, W] float32 tensor for `entry`, and the transform to undo on boxes."""
    if entry.input is None or entry.preprocess is None:
        raise ValueError(f"{entry.name} has no ONNX input description")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected a BGR image of shape [H, W, 3], got {image.shape}")
    spec = entry.preprocess
    canvas, transform = resize_to_input(image, spec, entry.input.width, entry.input.height)
    if spec.colour == "rgb":
        canvas = canvas[:, :, ::-1]
    x = canvas.astype(np.float32)
    if spec.scale != 1.0:
        x *= np.float32(spec.scale)
    if any(spec.mean):
        x -= np.asarray(spec.mean, dtype=np.float32)
    if any(s != 1.0 for s in spec.std):
        x /= np.asarray(spec.std, dtype=np.float32)
    tensor = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    return tensor, transform


_sessions: dict[tuple[str, int, bool], ort.InferenceSession] = {}
_sessions_lock = threading.Lock()


def shared_session(path: Path, threads: int = 1, spinning: bool = False) -> ort.InferenceSession:
    """The process-wide session for this model file and thread count (weights loaded once).

    `spinning` lets idle intra-op threads busy-wait for work. With threads > 1 it buys latency
    (YOLOX-Nano ~15 -> ~10 ms on 2 cores) at about three times the CPU per frame, because the
    pool keeps spinning after each run; off by default, the recorder and other cameras need those
    cycles. It changes nothing with one thread (there is no pool)."""
    key = (str(Path(path).resolve()), threads, spinning)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = _new_session(Path(path), threads, spinning)
            _sessions[key] = session
        return session


def _new_session(path: Path, threads: int, spinning: bool) -> ort.InferenceSession:
    if threads < 1:
        raise ValueError("threads must be >= 1")
    opts = ort.SessionOptions()
    # Bounded, predictable CPU use on a shared box: the recorder and other cameras need the cores too.
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    # Several cameras run this session concurrently; the default arena keeps the peak of every
    # concurrent run's buffers for good, which a 1 GB box cannot spare.
    opts.enable_cpu_mem_arena = False
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable/invalid files
        raise ModelError(f"cannot load ONNX model {path}: {exc}") from exc


class OnnxDetector:
    """A registry model run by onnxruntime; implements the `Detector` protocol.

    `classes` are the labels reported (others are dropped after decoding); `threads` is the
    session's intra-op thread count and `spinning` its busy-wait policy (see `shared_session`).
    Several cameras are better served by several concurrent `detect` calls on a 1-thread session
    than by one multi-threaded session: the calls run in parallel and nothing spins."""

    def __init__(
        self,
        entry: ModelEntry,
        model_path: Path,
        threshold: float = 0.5,
        threads: int = 1,
        classes: Sequence[str] = ("person",),
        iou_threshold: float = DEFAULT_IOU,
        spinning: bool = False,
    ) -> None:
        if entry.input is None or entry.preprocess is None:
            raise ModelError(f"{entry.name} is not an ONNX model (family {entry.family})")
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        unknown = [c for c in classes if c not in entry.classes]
        if unknown:
            raise ModelError(f"{entry.name} has no class {', '.join(unknown)}")
        self.name = entry.name
        self.entry = entry
        self.threshold = threshold
        self.threads = threads
        self.iou_threshold = iou_threshold
        self.classes = tuple(classes)
        self._class_ids = np.asarray([entry.classes.index(c) for c in classes], dtype=np.int64)
        self.session = shared_session(model_path, threads, spinning)
        self._input_name, self._output_name = self._check_io()

    def _check_io(self) -> tuple[str, str]:
        """The file must be the model the registry describes: same input name and size, same output shape."""
        assert self.entry.input is not None and self.entry.output is not None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1:
            raise ModelError(f"{self.name}: expected one input, the file has {len(inputs)}")
        inp, want = inputs[0], self.entry.input
        if inp.name != want.name:
            raise ModelError(f"{self.name}: input is named {inp.name!r}, the registry says {want.name!r}")
        if not _shape_fits(inp.shape, (1, 3, want.height, want.width)):
            raise ModelError(
                f"{self.name}: input shape {inp.shape}, the registry says [1, 3, {want.height}, {want.width}]"
            )
        out = outputs[0]
        if not _shape_fits(out.shape, self.entry.output.shape):
            raise ModelError(
                f"{self.name}: output shape {out.shape}, the registry says {list(self.entry.output.shape)}"
            )
        return inp.name, out.name

    def infer(self, tensor: FloatArray) -> npt.NDArray[np.float32]:
        """The raw network output for a preprocessed tensor (benchmarks time this part alone)."""
        result = self.session.run([self._output_name], {self._input_name: tensor})
        return np.asarray(result[0], dtype=np.float32)

    def detect(self, image: npt.NDArray[np.uint8]) -> list[Detection]:
        tensor, transform = preprocess(image, self.entry)
        decoded = decode(self.entry, self.infer(tensor), self.threshold)
        decoded = decoded.select(np.isin(decoded.class_ids, self._class_ids))
        if len(decoded) == 0:
            return []
        decoded = decoded.select(batched_nms(decoded.boxes, decoded.scores, decoded.class_ids, self.iou_threshold))
        h, w = image.shape[:2]
        boxes = transform.to_frame(decoded.boxes)
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, float(w))
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, float(h))
        detections: list[Detection] = []
        for (x1, y1, x2, y2), score, cid in zip(
            boxes.tolist(), decoded.scores.tolist(), decoded.class_ids.tolist(), strict=True
        ):
            if x2 > x1 and y2 > y1:  # a box entirely in the letterbox padding clips to nothing
                detections.append(Detection(Box(x1, y1, x2, y2), score, self.entry.classes[cid]))
        return detections

    def __repr__(self) -> str:
        return f"OnnxDetector({self.name!r}, threshold={self.threshold}, threads={self.threads})"


def _shape_fits(actual: Sequence[int | str | None], expected: Sequence[int]) -> bool:
    """Static dims must match; symbolic (dynamic) dims in the file accept anything."""
    if len(actual) != len(expected):
        return False
    return all(not isinstance(a, int) or a == e for a, e in zip(actual, expected, strict=True))
