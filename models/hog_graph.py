"""Builds the HOG people detector as an ONNX graph: OpenCV's trained weights, no download, no binary in the repo.

OpenCV ships a linear SVM trained on INRIA people (`cv2.HOGDescriptor.getDefaultPeopleDetector()`: 3780
weights over the default 64x128 HOG descriptor, then the bias). This module rebuilds OpenCV's CPU HOG
(modules/objdetect/src/hog.cpp, defaults of `cv2.HOGDescriptor()`) as one fully convolutional graph, so the
detector runs through onnxruntime like every other model and one run scores every 8-pixel window step:

1. Gamma: OpenCV's default (`gammaCorrection=True`) works on the square root of the 0..255 pixel values.
2. Gradients: Conv with [-1, 0, 1] in x and y after a 1-pixel reflect-101 pad (OpenCV's border rule,
   which makes the gradient across the image edge 0). For BGR input each channel has its own gradient
   and per pixel the channel with the largest magnitude wins, ties to B, then G, then R (OpenCV's SIMD
   order); this is selected with 0/1 masks, as `Where` costs ~20x an `Add` in onnxruntime's CPU kernels.
3. Orientation, unsigned: atan(dy / dx) (ONNX has no Atan2; modulo 180 degrees the quadrant does not
   matter). OpenCV uses its `fastAtan32f` polynomial, within 0.01 degrees (5e-4 of a bin) of this.
4. Soft binning: 9 bins of 20 degrees, a pixel's magnitude split linearly between the two nearest bin
   centres (OpenCV's `computeGradient`). With pos = angle / 20 - 0.5 the bin-k share is the hat
   mag * max(0, 1 - |pos - k|) = r(k-1) - 2 r(k) + r(k+1), with ramps r(j) = mag * max(0, pos - j). The
   10 ramps need one 1x1 Conv + Relu (fused by onnxruntime); the hats, the circular wrap (k = -5..4 taken
   mod 9) and everything after pooling are linear, so they collapse into one small Conv at block
   resolution. This keeps the full-resolution work to 10 channels and a handful of passes.
5. Blocks: OpenCV weights each pixel of a 16x16 block by a Gaussian (sigma 4, centred at pixel 8) and
   splits it bilinearly between the block's 2x2 cells (tents of half-width 8 around the cell centres).
   Both weights are separable, so the four cell histograms of every block are a grouped Conv with 16
   taps at stride 8, vertical then horizontal. This is OpenCV's spatial (trilinear) interpolation exactly,
   not an approximation: a cell has a different histogram in each of the four blocks holding it, here too.
6. Normalisation, L2-Hys as OpenCV's `normalizeBlockHistogram`: v / (|v| + 0.1 * 36), clip at 0.2,
   v / (|v| + 1e-3).
7. SVM: the 15 x 7 block weights of a window as a Conv over the block grid, plus the bias: one margin per
   window. Done as a 15x1 Conv to 7 block columns, then a 1x7 Conv summing them: the same products as one
   15x7 Conv, but its im2col buffer is 7x smaller and it runs ~3x faster.

Input `image`: float32 [1, C, H, W], C = 3 (BGR) or 1 (grey, e.g. cv2.cvtColor), values 0..255, H >= 128,
W >= 64, any size: the strided convs drop rows and columns that do not fill a block, and windows are only
scored where they lie wholly inside the image, as OpenCV's detectMultiScale does (zero padding). A caller
may pad (reflect-101 keeps the border gradients OpenCV's) and ignore the windows that reach into its pad.
Output `score`: float32 [1, 1, (H - 128) // 8 + 1, (W - 64) // 8 + 1], the SVM margin of the 64x128 window
whose top-left corner is at (8 * column, 8 * row). OpenCV's own hit threshold is margin >= 0.
Optional output `blocks` (for tests): the normalised block histograms [1, 36, (H - 16) // 8 + 1,
(W - 16) // 8 + 1], channel = bin * 4 + cell_y * 2 + cell_x.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WIN_W, WIN_H = 64, 128
CELL = 8
BLOCK = 16
STRIDE = 8  # block stride, and the window step of the score map
NBINS = 9
BLOCK_LEN = 4 * NBINS  # 2x2 cells
BLOCKS_X = (WIN_W - BLOCK) // STRIDE + 1  # 7
BLOCKS_Y = (WIN_H - BLOCK) // STRIDE + 1  # 15
DESCRIPTOR_LEN = BLOCKS_X * BLOCKS_Y * BLOCK_LEN  # 3780
WIN_SIGMA = (BLOCK + BLOCK) / 8.0  # OpenCV's winSigma=-1 default means (block w + block h) / 8 = 4
L2HYS_CLIP = 0.2
L2_EPS = 0.1 * BLOCK_LEN  # OpenCV adds this to the first L2 norm, not 1e-3 as Dalal & Triggs
OPSET = 17
IR_VERSION = 8  # pinned like the opset: the bytes must not change with the installed onnx package
# Ramps r(j) = mag * max(0, pos - j): pos = atan(dy/dx) * 9/pi - 0.5 lies in [-5, 4], so hats k = -5..4
# cover it (k = -5 and k = 4 are both bin 4, 90 degrees) and need r(-6)..r(5). r(4) and r(5) are always 0
# and not computed; r(-6) and r(-5) are linear there, which is what the 2 extra channels cost.
RAMPS = np.arange(-6, 4)
_TINY = 1e-30  # dx + tiny: 0/0 -> 0 (a flat pixel has no magnitude anyway), x/0 -> +-1e31 -> atan +-90 deg


def people_svm() -> tuple[np.ndarray, float]:
    """OpenCV's default people detector: (3780 weights in OpenCV's descriptor order, bias)."""
    svm = np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32).reshape(-1)
    if svm.size != DESCRIPTOR_LEN + 1:
        raise RuntimeError(f"OpenCV's people detector has {svm.size} weights, expected {DESCRIPTOR_LEN + 1}")
    return svm[:DESCRIPTOR_LEN], float(svm[DESCRIPTOR_LEN])


def cell_weights_1d() -> np.ndarray:
    """[2, 16]: weight of block pixel i (0..15) for the block's first and second cell along one axis,
    Gaussian included (HOGCache::init): tent 1 - |i - centre| / 8 around centre 3.5 or 11.5, times
    exp(-(i - 8)^2 / (2 sigma^2)). OpenCV centres the Gaussian on pixel 8, not 7.5: kept as it is."""
    i = np.arange(BLOCK, dtype=np.float64)
    gauss = np.exp(-((i - BLOCK / 2) ** 2) / (2 * WIN_SIGMA**2))
    tents = [np.maximum(0.0, 1.0 - np.abs(i - (CELL * c + (CELL - 1) / 2)) / CELL) for c in range(2)]
    return np.stack([gauss * t for t in tents])


def ramps_to_bins() -> np.ndarray:
    """[9, len(RAMPS)]: bin b = sum over j of M[b, j] * r(j), folding the hats k = -5..4 onto bins k mod 9."""
    mix = np.zeros((NBINS, RAMPS.size))
    col = {int(j): n for n, j in enumerate(RAMPS)}
    for k in range(-5, 5):
        for j, coef in ((k - 1, 1.0), (k, -2.0), (k + 1, 1.0)):
            if j in col:  # r(5) is identically 0
                mix[k % NBINS, col[j]] += coef
    return mix


def svm_block_weights(weights: np.ndarray) -> np.ndarray:
    """OpenCV's descriptor order -> [36, 15, 7] (block channel, block row, block column) in this graph's
    channel order. OpenCV orders blocks column-major (block x outer, y inner), then the cells of a block
    the same way (cell x outer), then bins; this graph's block channel is bin * 4 + cell_y * 2 + cell_x."""
    w = weights.reshape(BLOCKS_X, BLOCKS_Y, 2, 2, NBINS)  # bx, by, cx, cy, bin
    return np.ascontiguousarray(w.transpose(4, 3, 2, 1, 0).reshape(BLOCK_LEN, BLOCKS_Y, BLOCKS_X))


class _Graph:
    """Collects nodes and constants under deterministic names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, name: str, value: np.ndarray | float | list[int]) -> str:
        arr = np.asarray(value)
        arr = arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.astype(np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        return self.ops(op_type, inputs, 1, [out] if out else None, **attrs)[0]

    def ops(
        self, op_type: str, inputs: list[str], n_out: int, outs: list[str] | None = None, **attrs: Any
    ) -> list[str]:
        self._count += 1
        outs = outs or [f"{op_type.lower()}{self._count}_{k}" for k in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=f"n{self._count}_{op_type}", **attrs))
        return outs


def _select(g: _Graph, take: str, keep: str, new: str, old: str) -> str:
    """take ? new : old for 0/1 float masks (keep = 1 - take): exact, x * 1 + y * 0 == x, and far cheaper
    than Where."""
    return g.op("Add", [g.op("Mul", [new, take]), g.op("Mul", [old, keep])])


def _gradients(g: _Graph, image: str, channels: int, gamma: bool) -> tuple[str, str, str]:
    """-> (dx, dy, magnitude), each [1, 1, H, W]."""
    src = g.op("Sqrt", [image]) if gamma else image
    # Each direction pads only its own axis: two 1-D convs come out at H x W with no Split (2x faster).
    deriv = np.tile(np.array([-1.0, 0.0, 1.0]), (channels, 1, 1, 1))  # I(+1) - I(-1)
    pad_x = g.op("Pad", [src, g.const("pad_x", [0, 0, 0, 1, 0, 0, 0, 1])], mode="reflect")
    pad_y = g.op("Pad", [src, g.const("pad_y", [0, 0, 1, 0, 0, 0, 1, 0])], mode="reflect")
    dx_all = g.op("Conv", [pad_x, g.const("deriv_x", deriv.reshape(channels, 1, 1, 3))], group=channels)
    dy_all = g.op("Conv", [pad_y, g.const("deriv_y", deriv.reshape(channels, 1, 3, 1))], group=channels)
    if channels == 1:
        dxs, dys = [dx_all], [dy_all]
    else:
        dxs = g.ops("Split", [dx_all, g.const("split_x", [1] * channels)], channels, axis=1)
        dys = g.ops("Split", [dy_all, g.const("split_y", [1] * channels)], channels, axis=1)
    sq = [g.op("Add", [g.op("Mul", [dx, dx]), g.op("Mul", [dy, dy])]) for dx, dy in zip(dxs, dys, strict=True)]
    # OpenCV's SIMD path (all but a row's last width % 4 pixels): start from R, take G if at least as
    # strong, then B if at least as strong as both, so ties go to B, then G. (Its scalar tail breaks ties
    # the other way; matching the bulk is what counts.)
    dx, dy, mag2 = dxs[-1], dys[-1], sq[-1]
    for c in range(channels - 2, -1, -1):
        take = g.op("Cast", [g.op("GreaterOrEqual", [sq[c], mag2])], to=TensorProto.FLOAT)
        keep = g.op("Sub", [g.const(f"one_{c}", 1.0), take])
        dx, dy = _select(g, take, keep, dxs[c], dx), _select(g, take, keep, dys[c], dy)
        mag2 = g.op("Max", [mag2, sq[c]])
    return dx, dy, g.op("Sqrt", [mag2])


def build_hog_model(channels: int = 1, gamma: bool = True, with_blocks: bool = False) -> onnx.ModelProto:
    """The HOG people detector graph (see the module docstring); the same arguments give the same bytes.

    channels: 1 for grey input, 3 for BGR (OpenCV's per-pixel strongest channel; ~1.7x the time).
    gamma: OpenCV's default square-root gamma. with_blocks: also output the normalised block histograms."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (BGR), not {channels}")
    g = _Graph()
    dx, dy, mag = _gradients(g, "image", channels, gamma)

    # Ramps r(j) = relu(mag * pos - j * mag), pos = t * 9/pi - 0.5: one 1x1 Conv over [mag, mag * t].
    t = g.op("Atan", [g.op("Div", [dy, g.op("Add", [dx, g.const("tiny", _TINY)])])])
    mag_t = g.op("Concat", [mag, g.op("Mul", [mag, t])], axis=1)
    ramp_w = np.stack([-(RAMPS + 0.5), np.full(RAMPS.size, NBINS / np.pi)], axis=1).reshape(RAMPS.size, 2, 1, 1)
    ramps = g.op("Relu", [g.op("Conv", [mag_t, g.const("ramp_weights", ramp_w)])])  # [1, 10, H, W]

    # Block pooling: per ramp, vertical then horizontal 16-tap Conv at stride 8, one output per cell.
    n = RAMPS.size
    w1d = cell_weights_1d()
    vert = np.tile(w1d.reshape(2, 1, BLOCK, 1), (n, 1, 1, 1))  # out channel = ramp * 2 + cell_y
    rows = g.op("Conv", [ramps, g.const("block_rows", vert)], group=n, strides=[STRIDE, 1])
    horiz = np.tile(w1d.reshape(2, 1, 1, BLOCK), (2 * n, 1, 1, 1))  # out channel = ramp * 4 + cell_y * 2 + cell_x
    pooled = g.op("Conv", [rows, g.const("block_cols", horiz)], group=2 * n, strides=[1, STRIDE])
    # Ramps -> 9 bins per cell. The ramps are up to 10x the hats they make: the cancellation leaves
    # ~1e-6 relative error and can dip a few ulp below 0, which the Relu removes.
    mix = np.kron(ramps_to_bins(), np.eye(4)).reshape(BLOCK_LEN, 4 * n, 1, 1)
    hist = g.op("Relu", [g.op("Conv", [pooled, g.const("ramps_to_bins", mix)])])  # [1, 36, Hb, Wb]

    norm = g.op("Sqrt", [g.op("ReduceSumSquare", [hist], axes=[1], keepdims=1)])
    v = g.op("Div", [hist, g.op("Add", [norm, g.const("l2_eps", L2_EPS)])])
    v = g.op("Min", [v, g.const("l2hys_clip", L2HYS_CLIP)])
    norm = g.op("Sqrt", [g.op("ReduceSumSquare", [v], axes=[1], keepdims=1)])
    blocks = g.op("Div", [v, g.op("Add", [norm, g.const("l2hys_eps", 1e-3)])], out="blocks")

    weights, bias = people_svm()
    per_column = svm_block_weights(weights).transpose(2, 0, 1)[:, :, :, None]  # [7, 36, 15, 1]
    columns = g.op("Conv", [blocks, g.const("svm_columns", per_column)])
    column_sum = np.eye(BLOCKS_X).reshape(1, BLOCKS_X, 1, BLOCKS_X)  # output column c sums block column bx at c + bx
    g.op("Conv", [columns, g.const("svm_sum", column_sum), g.const("svm_bias", np.array([bias]))], out="score")

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, channels, "height", "width"])
    outputs = [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1, 1, "score_h", "score_w"])]
    if with_blocks:
        outputs.append(
            helper.make_tensor_value_info("blocks", TensorProto.FLOAT, [1, BLOCK_LEN, "blocks_h", "blocks_w"])
        )
    graph = helper.make_graph(g.nodes, "hog_people", [image], outputs, initializer=g.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="diaolou.models.hog_graph",
        doc_string="HOG people detector: OpenCV's default people SVM in a graph built by the project.",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model
