"""Motion detection per camera: the project's ONNX motion graph, then boxes around what moved.

    detector = MotionDetector(MotionSettings(masks=[[(0.0, 0.6), (1.0, 0.6), (1.0, 1.0), (0.0, 1.0)]]))
    result = detector.update(frame_bgr, t)  # every analysed frame of the detection stream (~5 fps)
    if result.motion: ...  # result.boxes are in frame_bgr's pixel coordinates

Per frame: grey (if BGR), downscaled to `MotionSettings.width` (INTER_AREA: averaging, which also
cuts sensor noise), one run of the motion graph (models/motion_graph.py: blur, difference to the
running background, threshold adapted to noise, dilated mask, cell grid, background and noise
update), then connected components of the mask, merged when close, filtered by area and scaled
back to the frame.

Lighting events (lights switched on, IR cut filter at dusk, clouds, the camera's auto exposure)
change most of the picture at once. When more than `lightning_fraction` of the analysed area
changes, the detector recalibrates: the background becomes the current frame and, for
`recalibrate_seconds`, follows the picture frame by frame while results say `recalibrating=True`
with no boxes. The same happens on the first frame, after a gap in the timestamps (stream
reconnected) and when the frame size changes.

One onnxruntime session per process serves all cameras: the graph is stateless (background,
motion age and noise estimate are inputs and outputs), `InferenceSession.run` is thread-safe, and each
`MotionDetector` keeps its own state, so one detector per camera, each used from one thread.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import cv2
import numpy as np
import onnxruntime as ort

from edge_agent.detectors.base import Box
from edge_agent.motion.settings import MotionSettings as MotionSettings
from models.motion_graph import CELL, DILATE, PARAM_NAMES, motion_graph_bytes, noise_grid_shape

Point = tuple[float, float]


@dataclass
class MotionResult:
    """Motion in one frame.

    boxes: moving areas in the input frame's pixel coordinates (empty while recalibrating).
    fraction: share of the analysed area (outside the mask polygons) that changed, 0-1.
    motion: there is at least one box.
    recalibrating: the detector is (re)learning the background; no motion is reported.
    mask: uint8 motion mask at the analysis resolution (255 = motion, dilated; all 0 while
        recalibrating); `scale` maps it to the frame.
    cells: share of changed pixels in each 8x8 cell of the analysis image (float32; whole cells
        only, a partial last row or column is left out).
    scale: (frame width / analysis width, frame height / analysis height).
    night: the picture is dark (mean background below MotionSettings.dark_level): night mode.
    gain: the global brightness ratio of this frame to the background (1 = unchanged).
    """

    boxes: list[Box]
    fraction: float
    motion: bool
    recalibrating: bool
    mask: np.ndarray
    cells: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    scale: tuple[float, float] = (1.0, 1.0)
    night: bool = False
    gain: float = 1.0


def analysis_size(frame_w: int, frame_h: int, width: int) -> tuple[int, int]:
    """(w, h) of the analysis image: `width` (never upscaled), the height keeping the aspect ratio,
    at least one cell in each direction."""
    w = min(width, frame_w)
    h = max(CELL, round(frame_h * w / frame_w))
    return max(CELL, w), h


def ignore_roi(polygons: Sequence[Sequence[Point]], w: int, h: int) -> np.ndarray:
    """float32 HxW: 1 where motion counts, 0 inside the mask polygons (normalised coordinates).

    A point (x, y) maps to pixel coordinates (x * w, y * h), the same as Box coordinates: pixel
    (i, j) covers [i, i+1) x [j, j+1) and is inside when its centre is.
    """
    roi = np.ones((h, w), dtype=np.uint8)
    shift = 4  # fillPoly's fixed-point fraction bits: sub-pixel vertices
    polys = []
    for poly in polygons:
        # Pixel centres are at i + 0.5, fillPoly's vertices at integer pixel positions: subtract 0.5.
        pts = [(round((x * w - 0.5) * (1 << shift)), round((y * h - 0.5) * (1 << shift))) for x, y in poly]
        polys.append(np.asarray(pts, dtype=np.int32))
    if polys:
        cv2.fillPoly(roi, polys, 0, lineType=cv2.LINE_8, shift=shift)
    return roi.astype(np.float32)


def merge_boxes(
    boxes: Sequence[Sequence[float]], areas: Sequence[float], distance: float
) -> tuple[list[list[float]], list[float]]:
    """Merge boxes (x1, y1, x2, y2) whose gap is <= distance in both directions, until no two are
    that close; their areas are summed. Returns (boxes, areas) sorted by (y1, x1)."""
    items = [[float(v) for v in box] + [float(area)] for box, area in zip(boxes, areas, strict=True)]
    if len(items) > MERGE_VECTORISED:
        items = _merge_vectorised(items, distance)
    merged = True
    while merged:
        # Plain Python: a frame has a handful of components, and numpy's per-call overhead would
        # cost more than the pairwise loop (which restarts after each merge: a grown box can now be
        # close to one it was not close to before).
        merged = False
        for i in range(len(items)):
            a = items[i]
            for j in range(i + 1, len(items)):
                b = items[j]
                if max(a[0], b[0]) - min(a[2], b[2]) <= distance and max(a[1], b[1]) - min(a[3], b[3]) <= distance:
                    items[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]), a[4] + b[4]]
                    del items[j]
                    merged = True
                    break
            if merged:
                break
    items.sort(key=lambda it: (it[1], it[0]))
    return [it[:4] for it in items], [it[4] for it in items]


# Components of the dilated mask smaller than this are specks (one or two changed pixels, 25-35 once
# dilated): in a noisy picture dozens lie within merge distance of each other, and merged, their
# summed areas passed min_area as one "object" (most of the false motion at night and in rain).
SPECK_PIXELS = 2 * DILATE * DILATE
MERGE_VECTORISED = 48  # more components than this (a noisy frame): first pass vectorised


def _merge_vectorised(items: list[list[float]], distance: float) -> list[list[float]]:
    """One vectorised pass: groups of mutually close boxes (transitively) merged into one."""
    arr = np.asarray(items, dtype=np.float64)
    gx = np.maximum(arr[:, None, 0], arr[None, :, 0]) - np.minimum(arr[:, None, 2], arr[None, :, 2])
    gy = np.maximum(arr[:, None, 1], arr[None, :, 1]) - np.minimum(arr[:, None, 3], arr[None, :, 3])
    n_groups, labels = _components((gx <= distance) & (gy <= distance))
    out = []
    for g in range(n_groups):
        member = arr[labels == g]
        out.append(
            [
                float(member[:, 0].min()),
                float(member[:, 1].min()),
                float(member[:, 2].max()),
                float(member[:, 3].max()),
                float(member[:, 4].sum()),
            ]
        )
    return out


def _components(adjacency: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of a symmetric boolean adjacency matrix: (count, label per node)."""
    n = len(adjacency)
    labels = np.full(n, -1, dtype=np.int64)
    count = 0
    for start in range(n):
        if labels[start] >= 0:
            continue
        labels[start] = count
        stack = [start]
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(adjacency[i] & (labels < 0)):
                labels[j] = count
                stack.append(int(j))
        count += 1
    return count, labels


def mask_boxes(mask: np.ndarray, min_pixels: float, merge_px: float, scale: tuple[float, float]) -> list[Box]:
    """Boxes around the connected components (8-connected) of a uint8 mask, specks (SPECK_PIXELS)
    left out, merged when their gap is <= merge_px, kept when their merged mask area is >=
    min_pixels, scaled by (sx, sy)."""
    # connectedComponentsWithStats costs ~4 ns per pixel of its input whatever the content (240 us
    # at 320x180 with one thread): run it on the bounding rectangle of the motion only, with
    # 16-bit labels (3x faster) when they cannot overflow (8-connected components are at most
    # one per 4 pixels).
    x0, y0, cw, ch = cv2.boundingRect(mask)
    if cw == 0 or ch == 0:
        return []
    crop = mask[y0 : y0 + ch, x0 : x0 + cw]
    ltype = cv2.CV_16U if crop.size // 4 < 65535 else cv2.CV_32S
    n, _, stats, _ = cv2.connectedComponentsWithStats(crop, connectivity=8, ltype=ltype)
    if n <= 1:
        return []
    pieces = [row for row in stats[1:].tolist() if row[cv2.CC_STAT_AREA] >= SPECK_PIXELS]
    if not pieces:
        return []
    boxes = [(x0 + x, y0 + y, x0 + x + w, y0 + y + h) for x, y, w, h, _ in pieces]
    merged, areas = merge_boxes(boxes, [row[cv2.CC_STAT_AREA] for row in pieces], merge_px)
    sx, sy = scale
    return [
        Box(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b, a in zip(merged, areas, strict=True) if a >= min_pixels
    ]


class MotionDetector:
    """Motion detector of one camera (see the module docstring). Not thread-safe itself: one per
    camera, fed from that camera's thread; the onnxruntime session behind it is shared."""

    _session: ClassVar[ort.InferenceSession | None] = None
    _session_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, config: MotionSettings) -> None:
        self.config = config
        self._params = config.params().as_array()
        self._recal_params = config.recalibration_params().as_array()
        # Reset: rate 1 with the noise estimate frozen (noise rate 0): the differences to a zero or
        # stale background are not noise.
        self._reset_params = self._recal_params.copy()
        self._reset_params[PARAM_NAMES.index("noise_rate")] = 0.0
        self._reset_params[PARAM_NAMES.index("alpha")] = 1.0
        self._reset_params[PARAM_NAMES.index("alpha_motion")] = 1.0
        self._frame_shape: tuple[int, int] | None = None
        self._size = (0, 0)  # analysis (w, h)
        self._roi = np.zeros((1, 1, 0, 0), dtype=np.float32)
        # Graph state, fed back each frame: background, previous frame (blurred), motion age,
        # evidence ([1,1,h,w]) and the noise grid ([1,1,gh,gw]).
        self._background: np.ndarray | None = None
        self._previous = np.zeros((1, 1, 0, 0), dtype=np.float32)
        self._age = np.zeros((1, 1, 0, 0), dtype=np.float32)
        self._evidence = np.zeros((1, 1, 0, 0), dtype=np.float32)
        self._noise = np.zeros((1, 1, 1, 1), dtype=np.float32)
        self._level = 255.0
        self._last_t: float | None = None
        self._recalibrate_until = -math.inf

    @classmethod
    def session(cls) -> ort.InferenceSession:
        """The process-wide session, created on first use (double-checked under a lock)."""
        session = cls._session
        if session is None:
            with cls._session_lock:
                session = cls._session
                if session is None:
                    session = cls._session = make_session()
        return session

    @property
    def analysis_size(self) -> tuple[int, int]:
        """(w, h) of the analysis image (0, 0 before the first frame)."""
        return self._size

    @property
    def noise(self) -> float:
        """The running noise estimate (mean absolute difference of still pixels, grey levels),
        averaged over the regions."""
        return float(self._noise.mean())

    @property
    def night(self) -> bool:
        """The picture is dark (see MotionSettings.dark_level)."""
        return self._level < self.config.dark_level

    def reset(self) -> None:
        """Forget the background: the next frame starts a recalibration."""
        self._background = None

    def update(self, frame: np.ndarray, t: float) -> MotionResult:
        """Analyse one frame (BGR HxWx3 or grey HxW, uint8) taken at time t (seconds, monotonic)."""
        grey = _grey(frame)
        fh, fw = grey.shape
        if self._frame_shape != (fh, fw):
            self._set_geometry(fw, fh)
        w, h = self._size
        small = grey if (w, h) == (fw, fh) else cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA)
        scale = (fw / w, fh / h)

        if self._last_t is not None and not 0 <= t - self._last_t <= self.config.max_gap_seconds:
            self._background = None  # reconnect or clock jump: the old background is stale
        self._last_t = t
        if self._background is None:
            # First frame: nothing to compare with. The reset run makes it the background.
            self._background = np.zeros((1, 1, h, w), dtype=np.float32)
            self._recalibrate_until = t + self.config.recalibrate_seconds
            return self._recalibrate(small, scale, fraction=0.0)

        recalibrating = t < self._recalibrate_until
        mask, cells, background, previous, age, evidence, noise, fraction, gain, level = self._run(
            small, self._recal_params if recalibrating else self._params
        )
        changed = float(fraction[0])
        g = float(gain[0])
        self._level = float(level[0])
        if recalibrating:
            # The background follows the picture (rate 1) until the window ends.
            self._set_state(background, previous, None, evidence, noise)
            return self._empty(changed, scale, g)
        if changed > self.config.lightning_fraction or max(g, 1 / g) > self.config.gain_jump:
            # Most of the picture changed at once, or its brightness jumped (infrared switched on or
            # off): a lighting change, not an intruder. Run the frame again (rate 1) so that it
            # becomes the background; the noise re-learns during the window (an infrared picture
            # is much noisier than the colour one it replaces).
            self._recalibrate_until = t + self.config.recalibrate_seconds
            return self._recalibrate(small, scale, fraction=changed, gain=g)
        self._set_state(background, previous, age, evidence, noise)

        mask_u8 = cv2.convertScaleAbs(mask.reshape(h, w), alpha=255.0)  # 0/1 float -> 0/255 uint8
        boxes = mask_boxes(mask_u8, self.config.min_area * w * h, self.config.merge_distance * w, scale)
        return MotionResult(
            boxes, changed, bool(boxes), False, mask_u8, cells.reshape(cells.shape[2:]), scale, self.night, g
        )

    # --- internals ---------------------------------------------------------------------------
    def _set_geometry(self, fw: int, fh: int) -> None:
        w, h = analysis_size(fw, fh, self.config.width)
        self._frame_shape = (fh, fw)
        self._size = (w, h)
        self._roi = ignore_roi(self.config.masks, w, h).reshape(1, 1, h, w)
        self._noise = np.zeros((1, 1, *noise_grid_shape(h, w)), dtype=np.float32)
        self._background = None

    def _set_state(
        self,
        background: np.ndarray,
        previous: np.ndarray,
        age: np.ndarray | None,
        evidence: np.ndarray | None,
        noise: np.ndarray,
    ) -> None:
        # age None: start counting afresh (after a reset, motion ages refer to the old background).
        self._background = background
        self._previous = previous
        self._age = age if age is not None else np.zeros_like(background)
        self._evidence = evidence if evidence is not None else np.zeros_like(background)
        self._noise = noise

    def _run(self, small: np.ndarray, params: np.ndarray) -> list[np.ndarray]:
        assert self._background is not None
        h, w = small.shape
        if self._age.shape != self._background.shape:
            self._age = np.zeros_like(self._background)
        if self._evidence.shape != self._background.shape:
            self._evidence = np.zeros_like(self._background)
        if self._previous.shape != self._background.shape:
            self._previous = np.zeros_like(self._background)
        feed = {
            "frame": small.reshape(1, 1, h, w),
            "background": self._background,
            "previous": self._previous,
            "motion_age": self._age,
            "evidence": self._evidence,
            "noise": self._noise,
            "roi": self._roi,
            "params": params,
        }
        out: list[np.ndarray] = self.session().run(None, feed)
        return out

    def _recalibrate(
        self, small: np.ndarray, scale: tuple[float, float], fraction: float, gain: float = 1.0
    ) -> MotionResult:
        """Make this frame the background and report `recalibrating`."""
        out = self._run(small, self._reset_params)
        self._set_state(out[2], out[3], None, None, out[6])  # new_background, new_previous, new_noise
        return self._empty(fraction, scale, gain)

    def _empty(self, fraction: float, scale: tuple[float, float], gain: float = 1.0) -> MotionResult:
        w, h = self._size
        mask = np.zeros((h, w), dtype=np.uint8)
        cells = np.zeros((h // CELL, w // CELL), dtype=np.float32)
        return MotionResult([], fraction, False, True, mask, cells, scale, self.night, gain)


def make_session(threads: int = 1) -> ort.InferenceSession:
    """An onnxruntime session for the motion graph.

    One intra-op thread: the graph is ~60 k pixels of element-wise work, thread hand-offs would
    cost more than they save, and cameras already run in parallel. Basic graph optimisations
    only: the extended level rewrites the blur convolutions into the blocked NCHWc layout, whose
    reorder nodes cost more than the convolutions (~0.9 ms instead of ~0.4 ms for the graph).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3  # warnings about unused initializers etc. are not for operators
    return ort.InferenceSession(motion_graph_bytes(), options, providers=["CPUExecutionProvider"])


def _grey(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frame.dtype}")
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return np.asarray(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    if frame.ndim == 3 and frame.shape[2] == 1:
        return np.ascontiguousarray(frame[:, :, 0])
    raise ValueError(f"expected a BGR (HxWx3) or grey (HxW) frame, got shape {frame.shape}")
