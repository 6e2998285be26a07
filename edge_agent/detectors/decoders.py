"""Raw network outputs -> boxes, per model family. Pure numpy, no per-model state.

Every decoder returns boxes (x1, y1, x2, y2) in model-input pixels (the letterboxed or resized
tensor the network saw), a score per box and a class id per box, keeping only boxes whose score is
above `threshold`. Each box takes its single most likely class (as upstream YOLOX, YOLOv8 and
FastestDet do), so a box that is most likely a chair is never reported as a weak person. Mapping
back to frame pixels and NMS are the caller's job: they do not depend on the family.

Decoders score every candidate first and build boxes only for those above the threshold: at
5 fps on a small ARM box, exponentials for 3549 anchors per frame are not free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from models.registry import ModelEntry

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

# exp() of a wild regression output must not overflow to inf (inf boxes turn NMS IoUs into NaN);
# e^12 * stride is already far larger than any input.
_MAX_LOG_WH = 12.0


@dataclass(frozen=True)
class Decoded:
    boxes: FloatArray  # [N, 4] x1, y1, x2, y2 in model-input pixels
    scores: FloatArray  # [N]
    class_ids: IntArray  # [N]

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, mask: npt.NDArray[np.bool_] | IntArray) -> Decoded:
        return Decoded(self.boxes[mask], self.scores[mask], self.class_ids[mask])


def empty() -> Decoded:
    return Decoded(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def sigmoid(x: FloatArray) -> FloatArray:
    # tanh form: no overflow warning for large negative inputs, unlike 1 / (1 + exp(-x)).
    out: FloatArray = (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)
    return out


def _xywh_to_xyxy(cx: FloatArray, cy: FloatArray, w: FloatArray, h: FloatArray) -> FloatArray:
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1).astype(np.float32)


@lru_cache(maxsize=8)
def yolox_grid(width: int, height: int, strides: tuple[int, ...]) -> tuple[FloatArray, FloatArray]:
    """Cell offsets [N, 2] (x, y) and strides [N, 1] in YOLOX's anchor order: stride by stride,
    row-major within a stride. Cached and read-only: shared by all threads."""
    grids: list[FloatArray] = []
    steps: list[FloatArray] = []
    for s in strides:
        gy, gx = np.meshgrid(np.arange(height // s), np.arange(width // s), indexing="ij")
        grids.append(np.stack([gx, gy], axis=-1).reshape(-1, 2).astype(np.float32))
        steps.append(np.full((grids[-1].shape[0], 1), s, dtype=np.float32))
    grid, stride = np.concatenate(grids), np.concatenate(steps)
    grid.flags.writeable = False
    stride.flags.writeable = False
    return grid, stride


def decode_yolox(
    output: npt.NDArray[np.floating], width: int, height: int, strides: Sequence[int], threshold: float
) -> Decoded:
    """YOLOX raw grid output [1, N, 5+C]: (px, py, pw, ph, obj, cls...), obj and cls already sigmoid.
    xy = (p + cell) * stride, wh = exp(p) * stride, score = obj * cls."""
    grid, stride = yolox_grid(width, height, tuple(strides))
    pred = _squeeze_batch(output, 2, "yolox")
    if pred.shape[0] != grid.shape[0] or pred.shape[1] < 6:
        raise ValueError(
            f"yolox output {output.shape} does not fit a {width}x{height} input with strides {tuple(strides)} "
            f"({grid.shape[0]} anchors)"
        )
    cls = pred[:, 5:]
    class_ids = np.argmax(cls, axis=1)
    scores = pred[:, 4] * cls[np.arange(len(cls)), class_ids]
    keep = np.flatnonzero(scores > threshold)
    if keep.size == 0:
        return empty()
    p, g, s = pred[keep], grid[keep], stride[keep]
    xy = (p[:, 0:2] + g) * s
    wh = np.exp(np.minimum(p[:, 2:4], _MAX_LOG_WH)) * s
    boxes = _xywh_to_xyxy(xy[:, 0], xy[:, 1], wh[:, 0], wh[:, 1])
    return Decoded(boxes, scores[keep].astype(np.float32), class_ids[keep].astype(np.int64))


def decode_yolov8(output: npt.NDArray[np.floating], num_classes: int, threshold: float) -> Decoded:
    """Ultralytics YOLOv8 head [1, 4+C, N]: cx, cy, w, h in input pixels, then class scores
    (already sigmoid), no objectness. A transposed export [1, N, 4+C] is accepted too."""
    pred = _squeeze_batch(output, 2, "yolov8")
    rows = 4 + num_classes
    if pred.shape[0] == rows:
        pred = pred.T
    elif pred.shape[1] != rows:
        raise ValueError(f"yolov8 output {output.shape} does not have 4 + {num_classes} classes rows")
    cls = pred[:, 4:]
    class_ids = np.argmax(cls, axis=1)
    scores = cls[np.arange(len(cls)), class_ids]
    keep = np.flatnonzero(scores > threshold)
    if keep.size == 0:
        return empty()
    p = pred[keep]
    boxes = _xywh_to_xyxy(p[:, 0], p[:, 1], p[:, 2], p[:, 3])
    return Decoded(boxes, scores[keep].astype(np.float32), class_ids[keep].astype(np.int64))


def decode_fastestdet(output: npt.NDArray[np.floating], width: int, height: int, threshold: float) -> Decoded:
    """FastestDet head [1, 5+C, H, W] (upstream utils/tool.py handle_preds): channel 0 objectness
    (sigmoid in the graph), 1-2 centre offsets within the cell (tanh), 3-4 box width and height as
    a fraction of the whole input (sigmoid), 5.. class probabilities (softmax in the graph).
    cx = (tanh(tx) + col) / W, cy = (tanh(ty) + row) / H; score = obj^0.6 * cls^0.4."""
    pred = _squeeze_batch(output, 3, "fastestdet")
    if pred.shape[0] < 6:
        raise ValueError(f"fastestdet output {output.shape} has fewer than 6 channels")
    rows, cols = pred.shape[1], pred.shape[2]
    flat = pred.reshape(pred.shape[0], -1)  # [5+C, H*W], cells row-major
    cls = flat[5:]
    class_ids = np.argmax(cls, axis=0)
    cls_best = cls[class_ids, np.arange(cls.shape[1])]
    obj = np.clip(flat[0], 0.0, None)  # a negative rounding error would make obj ** 0.6 NaN
    scores = (obj**0.6) * (np.clip(cls_best, 0.0, None) ** 0.4)
    keep = np.flatnonzero(scores > threshold)
    if keep.size == 0:
        return empty()
    row, col = np.divmod(keep, cols)
    reg = flat[1:5, keep]
    cx = (np.tanh(reg[0]) + col) / cols * width
    cy = (np.tanh(reg[1]) + row) / rows * height
    bw = sigmoid(reg[2]) * width
    bh = sigmoid(reg[3]) * height
    boxes = _xywh_to_xyxy(cx, cy, bw, bh)
    return Decoded(boxes, scores[keep].astype(np.float32), class_ids[keep].astype(np.int64))


def decode(entry: ModelEntry, output: npt.NDArray[np.floating], threshold: float) -> Decoded:
    """Dispatch on the registry family; the entry supplies input size, strides and class count."""
    if entry.input is None:
        raise ValueError(f"{entry.name} ({entry.family}) is not an ONNX model with a decoder")
    w, h = entry.input.width, entry.input.height
    if entry.family == "yolox":
        assert entry.strides is not None  # checked by the registry
        return decode_yolox(output, w, h, entry.strides, threshold)
    if entry.family == "yolov8":
        return decode_yolov8(output, len(entry.classes), threshold)
    if entry.family == "fastestdet":
        return decode_fastestdet(output, w, h, threshold)
    raise ValueError(f"no decoder for family {entry.family!r}")


def _squeeze_batch(output: npt.NDArray[np.floating], ndim: int, family: str) -> FloatArray:
    arr = np.asarray(output, dtype=np.float32)
    if arr.ndim == ndim + 1:
        if arr.shape[0] != 1:
            raise ValueError(f"{family} decoder takes one image, got batch {arr.shape[0]}")
        arr = arr[0]
    if arr.ndim != ndim:
        raise ValueError(f"{family} output must have {ndim + 1} dims (batch first), got shape {output.shape}")
    return arr
