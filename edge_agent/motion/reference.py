"""The motion algorithm in plain numpy: the specification the ONNX graph is tested against.

`motion_step` does exactly what the graph of `models/motion_graph.py` does (the algorithm is
described step by step in that module's docstring), on 2-D arrays instead of [1,1,H,W] tensors.
It is written for clarity, not speed: the agent runs the graph, and tests check that both agree.

Where the two can differ: the blur, threshold, mask, dilation, cells, background update and
changed fraction use the same float32 operations in the same order on values that are exact
(see the graph's docstring), so they agree bit for bit given the same inputs. The noise estimate
is a mean over many pixels; onnxruntime and numpy sum in different orders, so it can differ by a
few float32 ulps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.motion_graph import BLUR, CELL, DILATE, PARAM_NAMES, blur_kernel_1d

F32 = np.float32


@dataclass(frozen=True)
class MotionParams:
    """Per-camera parameters fed to the graph as `params` (order: `PARAM_NAMES`).

    sensitivity: floor of the threshold, in grey levels (0-255) of the blurred difference.
    noise_factor: the threshold is at least noise_factor x the noise estimate.
    alpha: background update rate per analysed frame where there is no motion.
    alpha_motion: update rate under the (dilated) motion mask.
    noise_rate: update rate of the noise estimate per analysed frame.
    absorb_frames: a pixel under the mask for this many frames in a row becomes background.
    """

    sensitivity: float
    noise_factor: float
    alpha: float
    alpha_motion: float
    noise_rate: float
    absorb_frames: float

    def as_array(self) -> np.ndarray:
        values = [getattr(self, name) for name in PARAM_NAMES]
        return np.asarray(values, dtype=F32)


@dataclass(frozen=True)
class MotionStep:
    """What one step returns: the graph's outputs, as 2-D arrays and Python floats."""

    mask: np.ndarray  # float32 HxW, 1 = motion (dilated)
    cells: np.ndarray  # float32 (H//CELL)x(W//CELL), share of changed pixels per cell
    background: np.ndarray  # float32 HxW
    motion_age: np.ndarray  # float32 HxW
    noise: float
    fraction: float


def blur(frame: np.ndarray) -> np.ndarray:
    """5x5 binomial blur of a uint8 HxW image with edge padding, float32 (exact: see the graph)."""
    k = blur_kernel_1d()
    h, w = frame.shape
    p = np.pad(frame.astype(F32), BLUR // 2, mode="edge")
    rows = np.zeros((h + BLUR - 1, w), dtype=F32)
    for i in range(BLUR):
        rows += k[i] * p[:, i : i + w]
    out = np.zeros((h, w), dtype=F32)
    for i in range(BLUR):
        out += k[i] * rows[i : i + h, :]
    return out


def dilate(mask: np.ndarray) -> np.ndarray:
    """DILATE x DILATE max filter; outside the image counts as 0 (the mask is >= 0, so this is
    the same as ONNX MaxPool, whose padding is ignored)."""
    h, w = mask.shape
    r = DILATE // 2
    p = np.pad(mask, r)
    rows = np.zeros((h + 2 * r, w), dtype=F32)
    for i in range(DILATE):
        rows = np.maximum(rows, p[:, i : i + w])
    out = np.zeros((h, w), dtype=F32)
    for i in range(DILATE):
        out = np.maximum(out, rows[i : i + h, :])
    return out


def cell_grid(changed: np.ndarray) -> np.ndarray:
    """Mean of each whole CELL x CELL cell; a partial last row/column of cells is left out (as
    AveragePool does without ceil_mode)."""
    h, w = changed.shape
    gh, gw = h // CELL, w // CELL
    cells = changed[: gh * CELL, : gw * CELL].reshape(gh, CELL, gw, CELL)
    # Sum then divide: sums of 0/1 are exact, so any summation order gives the same result.
    grid: np.ndarray = (cells.sum(axis=(1, 3), dtype=F32) / F32(CELL * CELL)).astype(F32)
    return grid


def motion_step(
    frame: np.ndarray,
    background: np.ndarray,
    motion_age: np.ndarray,
    noise: float,
    roi: np.ndarray,
    params: MotionParams,
) -> MotionStep:
    """One analysed frame. frame: uint8 HxW grey; background, motion_age, roi: float32 HxW; noise:
    the running noise estimate. Returns the outputs and the state for the next frame."""
    p = params.as_array()
    sensitivity, noise_factor, alpha, alpha_motion, noise_rate, absorb_frames = (F32(v) for v in p)
    one = F32(1)
    noise32 = F32(noise)

    b = blur(frame)
    delta = b - background
    diff = np.abs(delta)

    threshold = np.maximum(sensitivity, noise_factor * noise32)
    changed = (diff > threshold).astype(F32) * roi
    mask = dilate(changed)
    cells = cell_grid(changed)

    new_motion_age = (motion_age + one) * mask
    absorb = np.clip(new_motion_age - (absorb_frames - one), F32(0), one)

    rate = np.maximum(alpha + mask * (alpha_motion - alpha), absorb)
    new_background = background + rate * delta

    still = roi * (one - mask)
    # float64 sums: the most accurate order-independent answer, rounded to float32 like the graph.
    noise_obs = F32(np.sum(diff * still, dtype=np.float64) / max(np.sum(still, dtype=np.float64), 1.0))
    new_noise = noise32 + noise_rate * (noise_obs - noise32)

    fraction = F32(np.sum(changed, dtype=np.float64) / max(np.sum(roi, dtype=np.float64), 1.0))
    return MotionStep(mask, cells, new_background.astype(F32), new_motion_age, float(new_noise), float(fraction))
