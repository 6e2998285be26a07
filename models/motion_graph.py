"""Build the project's motion-detection ONNX graph (issue "Edge detection").

The graph is built in memory at run time with `onnx.helper` (no .onnx file is committed) and the
build is reproducible: same onnx version, same bytes (`motion_graph_bytes()`; a test builds it in
two processes and compares). `edge_agent/motion/reference.py` is the same algorithm in plain numpy;
the tests compare the two.

The graph is stateless: the running background, the previous frame, the motion age, the evidence
and the noise estimate come in as inputs and the updated ones go out, so one onnxruntime session
serves every camera of the box (each `MotionDetector` keeps its own state) and a step can be
compared exactly with the reference. The per-camera settings are inputs too (`params`), for the
same reason.

Inputs (H, W: the analysis image, e.g. 320x180; the sizes are dynamic; GH, GW: the noise grid,
`noise_grid_shape(H, W)`):

| name | type, shape | meaning |
|---|---|---|
| `frame` | uint8 [1,1,H,W] | grey analysis image (the frame downscaled) |
| `background` | float32 [1,1,H,W] | running background, in blurred grey levels |
| `previous` | float32 [1,1,H,W] | the previous frame, blurred |
| `motion_age` | float32 [1,1,H,W] | frames each pixel has been under the motion mask without a break |
| `evidence` | float32 [1,1,H,W] | running mean of the signed difference (night integration) |
| `noise` | float32 [1,1,GH,GW] | running noise estimate per NOISE_CELL x NOISE_CELL region |
| `roi` | float32 [1,1,H,W] | 1 where motion counts, 0 inside the ignore polygons |
| `params` | float32 [10] | `PARAM_NAMES` |

Outputs: `mask` (1 = motion, dilated), `cells` (share of changed pixels per whole CELL x CELL
cell), `new_background`, `new_previous`, `new_motion_age`, `new_evidence`, `new_noise` (the state
for the next frame), `fraction` (changed pixels / roi pixels: the lighting check), `gain` (brightness ratio of
the frame to the background, 1 inside the day's dead band) and `level` (mean brightness of the
gain-corrected background: night mode below `dark_level`).

Per frame:

1. `blur` = the frame blurred by a 5x5 binomial kernel ([1 4 6 4 1]/16 each way), edges
   replicated. The weights are multiples of 1/256 and the input is uint8, so every partial sum
   is exact in float32 (the graph and numpy agree bit for bit).
2. Global gain: sum(blur) / sum(background) over the pixels still in the previous frame (motion
   age 0), clipped to GAIN_RANGE; by day (background mean >= dark_level) a ratio within
   GAIN_DEADBAND of 1 counts as 1. `delta` = blur - gain * background; `diff` = |delta|.
3. `threshold` = max(sensitivity * clip(level / dark_level, floor_min, 1), noise_factor * noise),
   the noise being the region's own in the dark and the mean of the regions by day.
4. `changed` = (by day diff > threshold, in the dark |5x5 mean of evidence| > weak_factor x
   threshold) * roi, with evidence += integrate_rate * (delta - evidence); `mask` = 5x5 dilation.
   `static` = |blur - previous| <= threshold.
5. `cells` = AveragePool(changed, CELL).
6. `new_motion_age` = (1 + static * motion_age) * mask; `absorb` = 1 from absorb_frames on,
   spread by an ABSORB_SPREAD max filter and kept under the mask; `new_evidence` = evidence *
   (1 - absorb); `new_previous` = blur.
7. `rate` = max(alpha, or alpha_motion under the mask, absorb); `new_background` = gain *
   background + rate * delta.
8. Noise per region: noise += noise_rate * (mean(diff * still) - mean(still) * noise) per cell,
   still = roi * (1 - mask): towards the mean difference of the cell's still pixels, weighted by
   how much of the cell is still.
9. `fraction` = sum(changed) / max(sum(roi), 1).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Opset 17 / IR 8 (onnx 1.12): old enough for every onnxruntime the project accepts (>= 1.17) and
# for the ARM wheels that lag behind.
OPSET = 17
IR_VERSION = 8

BLUR_1D = (1.0, 4.0, 6.0, 4.0, 1.0)  # binomial, divided by 16 per direction
BLUR = len(BLUR_1D)
DILATE = 5  # 5x5 at 320 px wide: joins pieces up to ~4 px apart
CELL = 8  # activity grid cell, pixels of the analysis image
# Where a pixel is absorbed into the background, so are the masked pixels up to 4 px around it: the
# ghost a person leaves flickers at its edges in a noisy picture, and pixels that dropped out of the
# mask for one frame would otherwise start counting again and linger as specks for seconds.
ABSORB_SPREAD = 9

NOISE_CELL = 16  # noise is estimated per NOISE_CELL x NOISE_CELL region of the analysis image
GAIN_RANGE = (0.2, 5.0)  # the global gain model follows brightness changes within this range
# ... and only those over 15 %: a person walking in close to the camera moves the ratio by up to
# ~11 % on the footage (their pixels were still in the previous frame), and smaller drifts are the
# background update's job.
GAIN_DEADBAND = 0.15

PARAM_NAMES = (
    "sensitivity",
    "noise_factor",
    "alpha",
    "alpha_motion",
    "noise_rate",
    "absorb_frames",
    "weak_factor",
    "integrate_rate",
    "dark_level",
    "floor_min",
)
INPUTS = ("frame", "background", "previous", "motion_age", "evidence", "noise", "roi", "params")
OUTPUTS = (
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
)


def noise_grid_shape(h: int, w: int) -> tuple[int, int]:
    """Rows and columns of the noise grid for an h x w analysis image (partial cells count)."""
    return -(-h // NOISE_CELL), -(-w // NOISE_CELL)


def blur_kernel_1d() -> np.ndarray:
    """The 1-D blur weights (float32, sum 1), shared with the numpy reference."""
    k = np.asarray(BLUR_1D, dtype=np.float32)
    return k / np.float32(k.sum())


def build_motion_graph() -> onnx.ModelProto:
    """The motion model (see the module docstring); checked with onnx.checker."""
    h, w = "height", "width"
    k = blur_kernel_1d()
    pad = BLUR // 2
    half = DILATE // 2

    def const(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(value, name=name)

    initializers = [
        # Separable blur: a 1x5 then a 5x1 convolution (10 multiply-adds per pixel instead of 25).
        const("k_row", k.reshape(1, 1, 1, BLUR)),
        const("k_col", k.reshape(1, 1, BLUR, 1)),
        # Pad amounts, [N,C,H,W] begins then ends: edge padding on H and W only.
        const("blur_pads", np.array([0, 0, pad, pad, 0, 0, pad, pad], dtype=np.int64)),
        const("one", np.array([1.0], dtype=np.float32)),
        const("zero_s", np.array(0.0, dtype=np.float32)),
        const("one_s", np.array(1.0, dtype=np.float32)),
        const("gain_lo", np.array(GAIN_RANGE[0], dtype=np.float32)),
        const("gain_hi", np.array(GAIN_RANGE[1], dtype=np.float32)),
        const("gain_deadband", np.array([GAIN_DEADBAND], dtype=np.float32)),
        const("noise_scales", np.array([1, 1, NOISE_CELL, NOISE_CELL], dtype=np.float32)),
        const("hw_starts", np.array([0, 0], dtype=np.int64)),
        const("hw_axes", np.array([2, 3], dtype=np.int64)),
    ]

    nodes = [
        # One Split (equal parts of 1) rather than a Slice per parameter: each node costs microseconds.
        helper.make_node("Split", ["params"], list(PARAM_NAMES), axis=0),
        # 1. blur (pad the uint8 frame: a quarter of the bytes of padding the float one)
        helper.make_node("Pad", ["frame", "blur_pads"], ["padded"], mode="edge"),
        helper.make_node("Cast", ["padded"], ["padded_f"], to=TensorProto.FLOAT),
        helper.make_node("Conv", ["padded_f", "k_row"], ["blur_rows"], kernel_shape=[1, BLUR]),
        helper.make_node("Conv", ["blur_rows", "k_col"], ["blur"], kernel_shape=[BLUR, 1]),
        # 2. global gain: the brightness ratio frame / background over the pixels that were still
        # in the previous frame (motion age 0), so a porch light or the camera's exposure step is
        # followed at once instead of lighting up the whole mask.
        helper.make_node("Clip", ["motion_age", "zero_s", "one_s"], ["was_moving"]),
        helper.make_node("Sub", ["one", "was_moving"], ["was_still"]),
        helper.make_node("Mul", ["roi", "was_still"], ["prev_still"]),
        helper.make_node("Mul", ["blur", "prev_still"], ["frame_still"]),
        helper.make_node("Mul", ["background", "prev_still"], ["bg_still"]),
        helper.make_node("ReduceSum", ["frame_still"], ["frame_still_sum"], keepdims=0),
        helper.make_node("ReduceSum", ["bg_still"], ["bg_still_sum"], keepdims=0),
        helper.make_node("Max", ["bg_still_sum", "one"], ["bg_still_sum_1"]),
        helper.make_node("Div", ["frame_still_sum", "bg_still_sum_1"], ["gain_raw"]),
        helper.make_node("Clip", ["gain_raw", "gain_lo", "gain_hi"], ["gain_clipped"]),
        helper.make_node("Sub", ["gain_clipped", "one"], ["gain_off"]),
        helper.make_node("Abs", ["gain_off"], ["gain_off_abs"]),
        # The dead band applies by day only: in the dark (the background's mean below dark_level)
        # a lamp flickering by 10 % is already over the lowered threshold, so every ratio counts.
        helper.make_node("Mul", ["background", "roi"], ["bg_raw_roi"]),
        helper.make_node("ReduceSum", ["bg_raw_roi"], ["bg_raw_sum"], keepdims=0),
        helper.make_node("ReduceSum", ["roi"], ["roi_count"], keepdims=0),
        helper.make_node("Max", ["roi_count", "one"], ["roi_count_1"]),
        helper.make_node("Div", ["bg_raw_sum", "roi_count_1"], ["level_raw"]),
        helper.make_node("Less", ["level_raw", "dark_level"], ["was_dark"]),
        helper.make_node("Where", ["was_dark", "zero_s", "gain_deadband"], ["deadband"]),
        helper.make_node("Greater", ["gain_off_abs", "deadband"], ["gain_big"]),
        helper.make_node("Where", ["gain_big", "gain_clipped", "one"], ["gain"]),
        helper.make_node("Mul", ["background", "gain"], ["bg_gain"]),
        # 3. difference to the (gain-corrected) background
        helper.make_node("Sub", ["blur", "bg_gain"], ["delta"]),
        helper.make_node("Abs", ["delta"], ["diff"]),
        # 4. threshold: a floor that scales with the scene's brightness below dark_level (a person
        # in a dark lane differs from it by a few grey levels, not 20), raised per region to
        # noise_factor x that region's noise.
        helper.make_node("Mul", ["level_raw", "gain"], ["level"]),
        helper.make_node("Div", ["level", "dark_level"], ["level_rel"]),
        helper.make_node("Max", ["level_rel", "floor_min"], ["level_rel_lo"]),
        helper.make_node("Min", ["level_rel_lo", "one"], ["floor_rel"]),
        helper.make_node("Mul", ["sensitivity", "floor_rel"], ["floor"]),
        helper.make_node(
            "Resize",
            ["noise", "", "noise_scales"],
            ["noise_up"],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        ),
        helper.make_node("Shape", ["frame"], ["hw"], start=2),
        helper.make_node("Slice", ["noise_up", "hw_starts", "hw", "hw_axes"], ["noise_px"]),
        # By day one figure for the whole picture (the mean of the regions), as before night mode:
        # the day results stay what they were; in the dark each region has its own.
        helper.make_node("ReduceMean", ["noise"], ["noise_mean"], keepdims=0),
        helper.make_node("Greater", ["one", "floor_rel"], ["dark"]),
        helper.make_node("Where", ["dark", "noise_px", "noise_mean"], ["noise_used"]),
        helper.make_node("Mul", ["noise_factor", "noise_used"], ["noise_threshold"]),
        helper.make_node("Max", ["floor", "noise_threshold"], ["threshold"]),
        # 5. changed pixels: by day, over the threshold now; in the dark, consistently over
        # weak_factor x the threshold (a dim person is consistent, sensor noise and rain are not:
        # in the dark, one frame over the threshold is more often a noise blob, a rain streak or
        # a ghost's flickering edge than a person, and it made most of the false motion).
        helper.make_node("Greater", ["diff", "threshold"], ["over"]),
        # Static: within the threshold of the previous frame; only static pixels age towards
        # absorption (step 7).
        helper.make_node("Sub", ["blur", "previous"], ["frame_delta"]),
        helper.make_node("Abs", ["frame_delta"], ["frame_diff"]),
        helper.make_node("Greater", ["frame_diff", "threshold"], ["stirring"]),
        helper.make_node("Cast", ["stirring"], ["stirring_f"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["one", "stirring_f"], ["static"]),
        helper.make_node("Cast", ["over"], ["over_f"], to=TensorProto.FLOAT),
        # Temporal integration, used in the dark only (floor_rel < 1; by day slow lighting drift is a
        # weak consistent change too): the evidence is a running mean of the signed difference
        # (rate integrate_rate), whose noise is sqrt(rate / (2 - rate)) of one frame's, so a dim
        # person who stays over weak_factor x the threshold for a few frames counts as changed.
        helper.make_node("Sub", ["delta", "evidence"], ["evidence_err"]),
        helper.make_node("Mul", ["integrate_rate", "evidence_err"], ["evidence_step"]),
        helper.make_node("Add", ["evidence", "evidence_step"], ["evidence_next"]),
        # ... and over a 5x5 neighbourhood: noise, even after the blur, is finer grained than a
        # person, and a background learnt from a few noisy frames (after a recalibration) carries
        # a fixed pattern of it that would otherwise look like weak consistent change.
        helper.make_node(
            "AveragePool",
            ["evidence_next"],
            ["evidence_local"],
            kernel_shape=[DILATE, DILATE],
            pads=[half, half, half, half],
            count_include_pad=0,
        ),
        helper.make_node("Abs", ["evidence_local"], ["evidence_abs"]),
        helper.make_node("Mul", ["weak_factor", "threshold"], ["weak_threshold"]),
        helper.make_node("Greater", ["evidence_abs", "weak_threshold"], ["consistent"]),
        helper.make_node("Cast", ["consistent"], ["consistent_raw"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["dark"], ["dark_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["consistent_raw", "dark_f"], ["consistent_f"]),
        helper.make_node("Sub", ["one", "dark_f"], ["day_f"]),
        helper.make_node("Mul", ["over_f", "day_f"], ["over_day"]),
        helper.make_node("Max", ["over_day", "consistent_f"], ["over_any"]),
        helper.make_node("Mul", ["over_any", "roi"], ["changed"]),
        helper.make_node(
            "MaxPool", ["changed"], ["mask"], kernel_shape=[DILATE, DILATE], pads=[half, half, half, half]
        ),
        helper.make_node("Sub", ["one", "mask"], ["not_mask"]),
        # 6. activity grid
        helper.make_node("AveragePool", ["changed"], ["cells"], kernel_shape=[CELL, CELL], strides=[CELL, CELL]),
        # 7. how many frames in a row each pixel has been under the mask and static (a pixel that
        # stirs restarts at 1, so that it still counts as "was moving" for the gain); absorb = 1
        # from absorb_frames on, spread to the masked pixels around. Only the static age: a person
        # walking towards the camera keeps a spot under the mask for seconds without being still,
        # and absorbing them left a ghost of their shape when they went. Absorbed pixels forget
        # their evidence, which would otherwise keep the ghost alive.
        helper.make_node("Mul", ["motion_age", "static"], ["age_static"]),
        helper.make_node("Add", ["age_static", "one"], ["age_plus"]),
        helper.make_node("Mul", ["age_plus", "mask"], ["new_motion_age"]),
        helper.make_node("Sub", ["absorb_frames", "one"], ["absorb_bias"]),
        helper.make_node("Sub", ["new_motion_age", "absorb_bias"], ["age_over"]),
        helper.make_node("Clip", ["age_over", "zero_s", "one_s"], ["absorb_core"]),
        helper.make_node(
            "MaxPool",
            ["absorb_core"],
            ["absorb_near"],
            kernel_shape=[ABSORB_SPREAD, ABSORB_SPREAD],
            pads=[ABSORB_SPREAD // 2] * 4,
        ),
        helper.make_node("Mul", ["absorb_near", "mask"], ["absorb"]),
        helper.make_node("Sub", ["one", "absorb"], ["keep"]),
        helper.make_node("Mul", ["evidence_next", "keep"], ["new_evidence"]),
        # 8. background update (from the gain-corrected background): slower under motion, at once
        # where absorbed. Mul + Add rather than Where: cheaper element-wise ops.
        helper.make_node("Sub", ["alpha_motion", "alpha"], ["alpha_delta"]),
        helper.make_node("Mul", ["mask", "alpha_delta"], ["rate_delta"]),
        helper.make_node("Add", ["alpha", "rate_delta"], ["rate_mask"]),
        helper.make_node("Max", ["rate_mask", "absorb"], ["rate"]),
        helper.make_node("Mul", ["rate", "delta"], ["step"]),
        helper.make_node("Add", ["bg_gain", "step"], ["new_background"]),
        helper.make_node("Identity", ["blur"], ["new_previous"]),
        # 9. noise per region from the still pixels: noise += rate * (mean(diff * still) -
        # mean(still) * noise) per cell, i.e. towards the mean difference of the cell's still
        # pixels, weighted by how much of the cell is still (a cell under motion keeps its value).
        helper.make_node("Mul", ["roi", "not_mask"], ["still"]),
        helper.make_node("Mul", ["diff", "still"], ["still_diff"]),
        helper.make_node(
            "AveragePool",
            ["still_diff"],
            ["cell_diff"],
            kernel_shape=[NOISE_CELL, NOISE_CELL],
            strides=[NOISE_CELL, NOISE_CELL],
            ceil_mode=1,
        ),
        helper.make_node(
            "AveragePool",
            ["still"],
            ["cell_still"],
            kernel_shape=[NOISE_CELL, NOISE_CELL],
            strides=[NOISE_CELL, NOISE_CELL],
            ceil_mode=1,
        ),
        helper.make_node("Mul", ["cell_still", "noise"], ["cell_expected"]),
        helper.make_node("Sub", ["cell_diff", "cell_expected"], ["noise_err"]),
        helper.make_node("Mul", ["noise_rate", "noise_err"], ["noise_step"]),
        helper.make_node("Add", ["noise", "noise_step"], ["new_noise"]),
        # 10. changed fraction of the roi
        helper.make_node("ReduceSum", ["changed"], ["changed_sum"], keepdims=0),
        helper.make_node("Div", ["changed_sum", "roi_count_1"], ["fraction"]),
    ]

    image: list[int | str] = [1, 1, h, w]
    grid: list[int | str] = [1, 1, "noise_h", "noise_w"]
    graph = helper.make_graph(
        nodes,
        "diaolou_motion",
        inputs=[
            helper.make_tensor_value_info("frame", TensorProto.UINT8, image),
            helper.make_tensor_value_info("background", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("previous", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("motion_age", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("evidence", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("noise", TensorProto.FLOAT, grid),
            helper.make_tensor_value_info("roi", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("params", TensorProto.FLOAT, [len(PARAM_NAMES)]),
        ],
        outputs=[
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("cells", TensorProto.FLOAT, [1, 1, "cells_h", "cells_w"]),
            helper.make_tensor_value_info("new_background", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("new_previous", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("new_motion_age", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("new_evidence", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("new_noise", TensorProto.FLOAT, grid),
            helper.make_tensor_value_info("fraction", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("level", TensorProto.FLOAT, [1]),
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        # Fixed strings only: no version numbers or dates, so that the bytes do not drift.
        producer_name="diaolou.models.motion_graph",
        doc_string="Diaolou motion detector; see models/motion_graph.py",
    )
    onnx.checker.check_model(model, full_check=True)
    return model


@lru_cache(maxsize=1)
def motion_graph_bytes() -> bytes:
    """The serialised model (deterministic protobuf serialisation, cached per process)."""
    data: bytes = build_motion_graph().SerializeToString(deterministic=True)
    return data


def motion_graph_sha256() -> str:
    return hashlib.sha256(motion_graph_bytes()).hexdigest()


if __name__ == "__main__":  # pragma: no cover - a convenience for inspecting the graph
    import sys

    data = motion_graph_bytes()
    if len(sys.argv) > 1:
        with open(sys.argv[1], "wb") as f:
            f.write(data)
    print(f"{len(data)} bytes, sha256 {motion_graph_sha256()}")
