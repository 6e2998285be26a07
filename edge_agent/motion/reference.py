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

from models.motion_graph import (
    ABSORB_SPREAD,
    BLUR,
    CELL,
    DILATE,
    GAIN_DEADBAND,
    GAIN_RANGE,
    NOISE_CELL,
    PARAM_NAMES,
    blur_kernel_1d,
)

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
    weak_factor: in the dark, a pixel whose evidence (running mean of the signed difference, rate
        integrate_rate) is over weak_factor x the threshold counts as changed too (temporal
        integration of weak but consistent change).
    integrate_rate: see weak_factor.
    dark_level: mean background brightness (grey levels) below which the sensitivity floor
        scales down with the brightness ...
    floor_min: ... but not below floor_min x sensitivity.
    """

    sensitivity: float
    noise_factor: float
    alpha: float
    alpha_motion: float
    noise_rate: float
    absorb_frames: float
    weak_factor: float = 0.5
    integrate_rate: float = 0.35
    dark_level: float = 80.0
    floor_min: float = 0.1

    def as_array(self) -> np.ndarray:
        values = [getattr(self, name) for name in PARAM_NAMES]
        return np.asarray(values, dtype=F32)


@dataclass(frozen=True)
class MotionStep:
    """What one step returns: the graph's outputs, as 2-D arrays and Python floats."""

    mask: np.ndarray  # float32 HxW, 1 = motion (dilated)
    cells: np.ndarray  # float32 (H//CELL)x(W//CELL), share of changed pixels per cell
    background: np.ndarray  # float32 HxW
    previous: np.ndarray  # float32 HxW, this frame blurred
    motion_age: np.ndarray  # float32 HxW
    evidence: np.ndarray  # float32 HxW
    noise: np.ndarray  # float32 noise grid (see models.motion_graph.noise_grid_shape)
    fraction: float
    gain: float
    level: float


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


def dilate(mask: np.ndarray, size: int = DILATE) -> np.ndarray:
    """size x size max filter; outside the image counts as 0 (the mask is >= 0, so this is
    the same as ONNX MaxPool, whose padding is ignored)."""
    h, w = mask.shape
    r = size // 2
    p = np.pad(mask, r)
    rows = np.zeros((h + 2 * r, w), dtype=F32)
    for i in range(size):
        rows = np.maximum(rows, p[:, i : i + w])
    out = np.zeros((h, w), dtype=F32)
    for i in range(size):
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


def box_mean(values: np.ndarray) -> np.ndarray:
    """DILATE x DILATE mean around each pixel, over the pixels inside the image (AveragePool with
    count_include_pad=0)."""
    h, w = values.shape
    r = DILATE // 2
    p = np.pad(values.astype(np.float64), r)
    ones = np.pad(np.ones((h, w)), r)
    sums = np.zeros((h, w))
    counts = np.zeros((h, w))
    for dy in range(DILATE):
        for dx in range(DILATE):
            sums += p[dy : dy + h, dx : dx + w]
            counts += ones[dy : dy + h, dx : dx + w]
    out: np.ndarray = (sums / counts).astype(F32)
    return out


def cell_means(values: np.ndarray) -> np.ndarray:
    """Mean of each NOISE_CELL x NOISE_CELL cell, partial cells at the right and bottom averaged
    over the pixels they have (AveragePool with ceil_mode, padding not counted)."""
    h, w = values.shape
    gh, gw = -(-h // NOISE_CELL), -(-w // NOISE_CELL)
    padded = np.zeros((gh * NOISE_CELL, gw * NOISE_CELL), dtype=np.float64)
    counts = np.zeros_like(padded)
    padded[:h, :w] = values
    counts[:h, :w] = 1
    sums = padded.reshape(gh, NOISE_CELL, gw, NOISE_CELL).sum(axis=(1, 3))
    n = counts.reshape(gh, NOISE_CELL, gw, NOISE_CELL).sum(axis=(1, 3))
    out: np.ndarray = (sums / n).astype(F32)
    return out


def motion_step(
    frame: np.ndarray,
    background: np.ndarray,
    previous: np.ndarray,
    motion_age: np.ndarray,
    evidence: np.ndarray,
    noise: np.ndarray,
    roi: np.ndarray,
    params: MotionParams,
    gain: float | None = None,
    level: float | None = None,
) -> MotionStep:
    """One analysed frame. frame: uint8 HxW grey; background, previous (the last frame, blurred),
    motion_age, evidence, roi: float32 HxW; noise: the noise grid. Returns the outputs and the
    state for the next frame.

    gain, level: the graph's values of these two sums over the whole image, to check everything
    else bit for bit (summed in another order they differ by float32 ulps, and a pixel exactly at
    the threshold could then fall on the other side); computed here when not given."""
    p = params.as_array()
    sensitivity, noise_factor, alpha, alpha_motion, noise_rate, absorb_frames = (F32(v) for v in p[:6])
    weak_factor, integrate_rate, dark_level, floor_min = (F32(v) for v in p[6:])
    one = F32(1)
    h, w = frame.shape

    b = blur(frame)
    prev_still = roi * (one - np.clip(motion_age, F32(0), one))
    roi_count = max(np.sum(roi, dtype=np.float64), 1.0)
    level_raw = F32(np.sum(background * roi, dtype=np.float64) / roi_count)
    deadband = F32(0) if level_raw < dark_level else F32(GAIN_DEADBAND)
    if gain is None:
        num = np.sum(b * prev_still, dtype=np.float64)
        den = max(np.sum(background * prev_still, dtype=np.float64), 1.0)
        clipped = np.clip(F32(num / den), F32(GAIN_RANGE[0]), F32(GAIN_RANGE[1]))
        gain = float(clipped) if abs(clipped - one) > deadband else 1.0
    bg_gain = background * F32(gain)
    delta = b - bg_gain
    diff = np.abs(delta)

    if level is None:
        level = float(level_raw * F32(gain))
    with np.errstate(divide="ignore"):  # dark_level 0: never dark (inf, as in the graph)
        floor_rel = min(max(F32(level) / dark_level, floor_min), one)
    floor = sensitivity * F32(floor_rel)
    dark = F32(one > F32(floor_rel))
    if dark:
        noise_px = np.repeat(np.repeat(noise, NOISE_CELL, axis=0), NOISE_CELL, axis=1)[:h, :w]
    else:
        noise_px = np.full((h, w), F32(np.mean(noise, dtype=np.float64)), dtype=F32)
    threshold = np.maximum(floor, noise_factor * noise_px)
    over = (diff > threshold).astype(F32)
    static = one - (np.abs(b - previous) > threshold).astype(F32)
    evidence_next = evidence + integrate_rate * (delta - evidence)
    consistent = (np.abs(box_mean(evidence_next)) > weak_factor * threshold).astype(F32) * dark
    changed = np.maximum(over * (one - dark), consistent) * roi
    mask = dilate(changed)
    cells = cell_grid(changed)

    new_motion_age = (motion_age * static + one) * mask
    absorb_core = np.clip(new_motion_age - (absorb_frames - one), F32(0), one)
    absorb = dilate(absorb_core, ABSORB_SPREAD) * mask
    new_evidence = evidence_next * (one - absorb)

    rate = np.maximum(alpha + mask * (alpha_motion - alpha), absorb)
    new_background = bg_gain + rate * delta

    still = roi * (one - mask)
    cell_diff = cell_means(diff * still)
    cell_still = cell_means(still)
    new_noise = (noise + noise_rate * (cell_diff - cell_still * noise)).astype(F32)

    fraction = F32(np.sum(changed, dtype=np.float64) / roi_count)
    return MotionStep(
        mask,
        cells,
        new_background.astype(F32),
        b,
        new_motion_age,
        new_evidence,
        new_noise,
        float(fraction),
        float(gain),
        float(level),
    )
