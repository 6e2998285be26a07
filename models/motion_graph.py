"""Build the project's motion-detection ONNX graph (issue "Edge detection").

The graph is built in memory at run time with `onnx.helper` (no .onnx file is committed) and the
build is reproducible: same onnx version, same bytes (`motion_graph_bytes()`; a test builds it in
two processes and compares). `edge_agent/motion/reference.py` is the same algorithm in plain numpy;
the tests compare the two.

The graph is stateless: the running background, the motion age and the noise estimate come in as
inputs and the updated ones go out, so one onnxruntime session serves every camera of the box (each
`MotionDetector` keeps its own state) and a step can be compared exactly with the reference. The
per-camera settings are inputs too (`params`), for the same reason.

Inputs (H, W: the analysis image, e.g. 320x180; the sizes are dynamic):

| name | type, shape | meaning |
|---|---|---|
| `frame` | uint8 [1,1,H,W] | grey analysis image (the frame downscaled) |
| `background` | float32 [1,1,H,W] | running background, in blurred grey levels |
| `motion_age` | float32 [1,1,H,W] | frames each pixel has been under the motion mask without a break |
| `noise` | float32 [1] | running estimate of the mean absolute difference of still pixels |
| `roi` | float32 [1,1,H,W] | 1 where motion counts, 0 inside the ignore polygons |
| `params` | float32 [6] | `PARAM_NAMES`: sensitivity, noise_factor, alpha, alpha_motion, noise_rate, absorb_frames |

Outputs:

| name | type, shape | meaning |
|---|---|---|
| `mask` | float32 [1,1,H,W] | 1 = motion: the changed pixels dilated by `DILATE` x `DILATE` |
| `cells` | float32 [1,1,H//CELL,W//CELL] | share of changed pixels (not dilated) in each whole CELL x CELL cell |
| `new_background` | float32 [1,1,H,W] | background to pass in with the next frame |
| `new_motion_age` | float32 [1,1,H,W] | motion age to pass in with the next frame |
| `new_noise` | float32 [1] | noise estimate to pass in with the next frame |
| `fraction` | float32 [1] | changed pixels (not dilated) / pixels in the roi; drives the lighting check |

Per frame:

1. `blur` = the frame blurred by a 5x5 binomial kernel ([1 4 6 4 1]/16 in each direction, a
   Gaussian of sigma ~1), the border replicated (edge padding) so that border pixels keep their
   full weight and are as sensitive as the rest. The weights are multiples of 1/256 and the input
   is uint8, so every partial sum is exact in float32 and the result does not depend on the order
   of summation (the graph and numpy agree bit for bit).
2. `delta` = blur - background; `diff` = |delta|.
3. `threshold` = max(sensitivity, noise_factor * noise): a fixed floor in grey levels, raised when
   the sensor gets noisy (night, gain up) so that noise does not become motion.
4. `changed` = (diff > threshold) * roi; `mask` = MaxPool(changed, DILATE, stride 1): dilation
   joins the pieces of one object (a body and its legs) before the connected components.
5. `cells` = AveragePool(changed, CELL, stride CELL).
6. `new_motion_age` = (motion_age + 1) * mask; `absorb` = clip(new_motion_age - (absorb_frames -
   1), 0, 1), i.e. 1 once a pixel has been under the mask for absorb_frames frames in a row.
7. `rate` = max(alpha + (alpha_motion - alpha) * mask, absorb): alpha where the mask is 0,
   alpha_motion under it (someone walking through leaves no trail in the background), 1 where
   absorbed: whatever stays changed for absorb_frames (a person who stopped, a parked car, the
   "ghost" left where a still object was) becomes background at once instead of over tens of
   seconds. `new_background` = background + rate * delta.
8. `still` = roi * (1 - mask); `new_noise` = noise + noise_rate * (mean of `diff` over `still` -
   noise). It measures how far still pixels are from the background: sensor noise, compression
   flicker and exposure drift not yet followed, all reasons to raise the threshold. Only still
   pixels count, so motion does not raise the threshold that would hide it; they are below the
   threshold by construction, which bounds the estimate (no runaway).
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

PARAM_NAMES = ("sensitivity", "noise_factor", "alpha", "alpha_motion", "noise_rate", "absorb_frames")
INPUTS = ("frame", "background", "motion_age", "noise", "roi", "params")
OUTPUTS = ("mask", "cells", "new_background", "new_motion_age", "new_noise", "fraction")


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
    ]

    nodes = [
        # One Split (equal parts of 1) rather than a Slice per parameter: each node costs microseconds.
        helper.make_node("Split", ["params"], list(PARAM_NAMES), axis=0),
        # 1. blur (pad the uint8 frame: a quarter of the bytes of padding the float one)
        helper.make_node("Pad", ["frame", "blur_pads"], ["padded"], mode="edge"),
        helper.make_node("Cast", ["padded"], ["padded_f"], to=TensorProto.FLOAT),
        helper.make_node("Conv", ["padded_f", "k_row"], ["blur_rows"], kernel_shape=[1, BLUR]),
        helper.make_node("Conv", ["blur_rows", "k_col"], ["blur"], kernel_shape=[BLUR, 1]),
        # 2. difference to the background
        helper.make_node("Sub", ["blur", "background"], ["delta"]),
        helper.make_node("Abs", ["delta"], ["diff"]),
        # 3. threshold adapted to noise
        helper.make_node("Mul", ["noise_factor", "noise"], ["noise_threshold"]),
        helper.make_node("Max", ["sensitivity", "noise_threshold"], ["threshold"]),
        # 4. changed pixels, dilated mask
        helper.make_node("Greater", ["diff", "threshold"], ["over"]),
        helper.make_node("Cast", ["over"], ["over_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["over_f", "roi"], ["changed"]),
        helper.make_node(
            "MaxPool", ["changed"], ["mask"], kernel_shape=[DILATE, DILATE], pads=[half, half, half, half]
        ),
        # 5. activity grid
        helper.make_node("AveragePool", ["changed"], ["cells"], kernel_shape=[CELL, CELL], strides=[CELL, CELL]),
        # 6. how long each pixel has been under the mask; absorb = 1 from absorb_frames on
        helper.make_node("Add", ["motion_age", "one"], ["age_plus"]),
        helper.make_node("Mul", ["age_plus", "mask"], ["new_motion_age"]),
        helper.make_node("Sub", ["absorb_frames", "one"], ["absorb_bias"]),
        helper.make_node("Sub", ["new_motion_age", "absorb_bias"], ["age_over"]),
        helper.make_node("Clip", ["age_over", "zero_s", "one_s"], ["absorb"]),
        # 7. background update: slower under motion, at once where absorbed. Mul + Add rather than
        # Where: cheaper element-wise ops.
        helper.make_node("Sub", ["alpha_motion", "alpha"], ["alpha_delta"]),
        helper.make_node("Mul", ["mask", "alpha_delta"], ["rate_delta"]),
        helper.make_node("Add", ["alpha", "rate_delta"], ["rate_mask"]),
        helper.make_node("Max", ["rate_mask", "absorb"], ["rate"]),
        helper.make_node("Mul", ["rate", "delta"], ["step"]),
        helper.make_node("Add", ["background", "step"], ["new_background"]),
        # 8. noise estimate from the still pixels (a strided subsample would not be cheaper: in
        # onnxruntime a strided Slice costs as much as the element-wise op it would save)
        helper.make_node("Sub", ["one", "mask"], ["not_mask"]),
        helper.make_node("Mul", ["roi", "not_mask"], ["still"]),
        helper.make_node("Mul", ["diff", "still"], ["still_diff"]),
        helper.make_node("ReduceSum", ["still_diff"], ["still_diff_sum"], keepdims=0),
        helper.make_node("ReduceSum", ["still"], ["still_count"], keepdims=0),
        helper.make_node("Max", ["still_count", "one"], ["still_count_1"]),
        helper.make_node("Div", ["still_diff_sum", "still_count_1"], ["noise_obs"]),
        helper.make_node("Sub", ["noise_obs", "noise"], ["noise_err"]),
        helper.make_node("Mul", ["noise_rate", "noise_err"], ["noise_step"]),
        helper.make_node("Add", ["noise", "noise_step"], ["new_noise"]),
        # 9. changed fraction of the roi
        helper.make_node("ReduceSum", ["changed"], ["changed_sum"], keepdims=0),
        helper.make_node("ReduceSum", ["roi"], ["roi_count"], keepdims=0),
        helper.make_node("Max", ["roi_count", "one"], ["roi_count_1"]),
        helper.make_node("Div", ["changed_sum", "roi_count_1"], ["fraction"]),
    ]

    image: list[int | str] = [1, 1, h, w]
    graph = helper.make_graph(
        nodes,
        "diaolou_motion",
        inputs=[
            helper.make_tensor_value_info("frame", TensorProto.UINT8, image),
            helper.make_tensor_value_info("background", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("motion_age", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("noise", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("roi", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("params", TensorProto.FLOAT, [len(PARAM_NAMES)]),
        ],
        outputs=[
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("cells", TensorProto.FLOAT, [1, 1, "cells_h", "cells_w"]),
            helper.make_tensor_value_info("new_background", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("new_motion_age", TensorProto.FLOAT, image),
            helper.make_tensor_value_info("new_noise", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("fraction", TensorProto.FLOAT, [1]),
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
