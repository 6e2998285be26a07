"""Class-wise non-maximum suppression in numpy.

Pure numpy so it runs the same on every box (no cv2.dnn.NMSBoxes quirks with integer boxes, no torch).
Class-wise by offsetting each class's boxes far apart, the usual trick: one pass of greedy NMS then
never lets a person suppress a bicycle that overlaps it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

DEFAULT_IOU = 0.45

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float = DEFAULT_IOU) -> IntArray:
    """Greedy NMS: indices of the kept boxes, highest score first. A box is dropped when its IoU with
    a kept, higher-scoring box is strictly greater than `iou_threshold`."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = boxes.astype(np.float32, copy=False)
    # Stable sort: equal scores keep their input order, so results are deterministic.
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(
    boxes: FloatArray, scores: FloatArray, class_ids: IntArray, iou_threshold: float = DEFAULT_IOU
) -> IntArray:
    """NMS within each class only; indices of the kept boxes, highest score first."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = boxes.astype(np.float32, copy=False)
    # Shift each class into its own region, further apart than any box is wide, so boxes of
    # different classes can never overlap.
    span = float(np.max(boxes) - min(0.0, float(np.min(boxes)))) + 1.0
    offsets = (class_ids.astype(np.float32) * span)[:, None]
    return nms(boxes + offsets, scores, iou_threshold)
