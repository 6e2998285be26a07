"""Night test set made at run time from the real footage (nothing is written into the repository).

The one-by-one footage (../shared/data/video/one-by-one-person-detection.mp4, 768x432 at 10 fps)
is read as the agent's detection stream sees it (5 fps, 640x360) and each variant below is applied
frame by frame. The labels carry over unchanged: `APPEARANCES` are the seconds in which a person is
in view (the same labels tests/test_detection_eval.py checks events against), and `empty_gaps()`
the stretches with nobody in view (at least 1 s from those labels' edges); every effect that must
not alert (brightness steps, the colour-to-grey switch, headlights) happens in an empty stretch.

Variants (`VARIANTS`; all deterministic, one seed per variant):

- day: the footage as it is.
- night: gamma 1.5 then 15 % of the brightness, Gaussian noise sigma 8 fresh every frame,
  brightness steps x1.4 and x0.6 in the empty stretches (issue 15's night).
- dark: gamma 1.8 then 8 %, noise sigma 6 (an unlit lane).
- noisy: gamma 1.5 then 15 %, noise sigma 14 (gain at its maximum).
- infrared: colour dusk (gamma 1.3, 35 %, sigma 5) until the camera switches to a grey IR
  picture (gamma 1.2, 45 %, sigma 10) in an empty stretch.
- headlights: night, plus a car's headlights sweeping across the empty lane (a moving bright
  cone lifting the whole picture) in the empty stretches.
- rain: night, plus rain: a few hundred short bright streaks, fresh every frame.

`frames(variant, start, end)` yields (t, BGR frame); `person_in_view(t)` / `empty(t)` label a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from tests.test_motion import EMPTY

REPO = Path(__file__).resolve().parents[2]
FOOTAGE = REPO.parent / "shared" / "data" / "video" / "one-by-one-person-detection.mp4"
W, H = 640, 360
FPS = 5
SOURCE_FPS = 10
DURATION = 139.4
# (first, last) second in which a person is in view (read off the frames; tests/test_detection_eval.py).
APPEARANCES = [(6.5, 19.0), (23.0, 44.0), (51.0, 69.0), (74.5, 86.0), (92.5, 118.5), (124.0, 135.5)]


@dataclass(frozen=True)
class Variant:
    """How one variant darkens and disturbs the footage.

    gamma, gain: v -> 255 * gain * (v / 255) ** gamma (gamma > 1 crushes the shadows like a
        camera's night curve); noise: sigma of the Gaussian sensor noise (grey levels, fresh every
        frame, the same on all channels like luma noise); steps: factors applied one after the
        other at the middle of successive empty stretches, or at `step_at` seconds (a porch light,
        the camera's exposure);
        grey_after: seconds from which the picture is grey (IR), with `ir_gamma`, `ir_gain`,
        `ir_noise` taking over; headlights, rain: the two overlays.
    """

    name: str
    gamma: float = 1.0
    gain: float = 1.0
    noise: float = 0.0
    steps: tuple[float, ...] = ()
    grey_after: float | None = None
    ir_gamma: float = 1.0
    ir_gain: float = 1.0
    ir_noise: float = 0.0
    step_at: tuple[float, ...] = ()
    headlights: bool = False
    rain: bool = False
    seed: int = 0


def empty_gaps() -> list[tuple[float, float]]:
    """Stretches with nobody in view, in seconds: tests/test_motion.py's hand-labelled EMPTY
    stretches (no person and no shadow on the floor either; each starts 1.2-2.2 s after a label's
    end, because the person's shadow and a foot at the frame's edge stay a little longer)."""
    return [(a / SOURCE_FPS, b / SOURCE_FPS) for a, b in EMPTY]


def gap_middles() -> list[float]:
    return [(a + b) / 2 for a, b in empty_gaps()]


def person_in_view(t: float) -> bool:
    return any(a <= t <= b for a, b in APPEARANCES)


def empty(t: float) -> bool:
    """Nobody in view (and at least 1 s from any label's edge)."""
    return any(a <= t <= b for a, b in empty_gaps())


NIGHT = {"gamma": 1.5, "gain": 0.15, "noise": 8.0}
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        Variant("day"),
        Variant("night", **NIGHT, steps=(1.4, 0.6, 1.4, 0.6, 1.4, 0.6), seed=1),  # type: ignore[arg-type]
        Variant("dark", gamma=1.8, gain=0.08, noise=6.0, seed=2),
        Variant("noisy", gamma=1.5, gain=0.15, noise=14.0, seed=3),
        Variant(
            "infrared",
            gamma=1.3,
            gain=0.35,
            noise=5.0,
            grey_after=gap_middles()[1],
            ir_gamma=1.2,
            ir_gain=0.45,
            ir_noise=10.0,
            seed=4,
        ),
        Variant("headlights", **NIGHT, headlights=True, seed=5),  # type: ignore[arg-type]
        Variant("rain", **NIGHT, rain=True, seed=6),  # type: ignore[arg-type]
    ]
}


def source_frames(
    start: float = 0.0, end: float = DURATION, path: Path = FOOTAGE
) -> Iterator[tuple[float, np.ndarray]]:
    """(t, 640x360 BGR) of the footage at 5 fps between start and end seconds."""
    step = SOURCE_FPS // FPS
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            t = i / SOURCE_FPS
            if t >= end:
                break
            if i % step or t < start:
                continue
            yield t, cv2.resize(frame.to_ndarray(format="bgr24"), (W, H), interpolation=cv2.INTER_AREA)


def _curve(gamma: float, gain: float) -> np.ndarray:
    v = np.arange(256, dtype=np.float32) / 255.0
    return (255.0 * gain * v**gamma).astype(np.float32)


def _step_gain(variant: Variant, t: float) -> float:
    g = 1.0
    for factor, at in zip(variant.steps, variant.step_at or gap_middles(), strict=False):
        if t >= at:
            g *= factor
    return g


def _headlights(t: float) -> tuple[float, float] | None:
    """(x position 0-1 of the beam, strength 0-1) while a car passes: 2 s sweeps in the empty
    stretches that last 2 s or more."""
    for a, b in empty_gaps():
        mid = (a + b) / 2
        if b - a >= 2 and mid - 1.0 <= t <= mid + 1.0:
            x = (t - (mid - 1.0)) / 2.0
            return x, float(np.sin(np.pi * x))
    return None


def apply(variant: Variant, t: float, frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One frame of the variant (BGR uint8 in, BGR uint8 out)."""
    if variant.name == "day":
        return frame
    grey = variant.grey_after is not None and t >= variant.grey_after
    if grey:
        luma = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        img = cv2.cvtColor(luma, cv2.COLOR_GRAY2BGR)
        curve, sigma = _curve(variant.ir_gamma, variant.ir_gain), variant.ir_noise
    else:
        img, curve, sigma = frame, _curve(variant.gamma, variant.gain), variant.noise
    out = curve[img] * np.float32(_step_gain(variant, t))
    if variant.headlights:
        beam = _headlights(t)
        if beam is not None:
            x, strength = beam
            xs = np.arange(W, dtype=np.float32)[None, :] / W
            ys = np.arange(H, dtype=np.float32)[:, None] / H
            cone = np.exp(-(((xs - x) / 0.18) ** 2) - ((ys - 0.75) / 0.35) ** 2)
            out = out * np.float32(1.0 + 0.8 * strength) + (120.0 * strength * cone)[..., None]
    if sigma:
        out = out + rng.normal(0.0, sigma, (H, W)).astype(np.float32)[..., None]
    if variant.rain:
        layer = np.zeros((H, W), dtype=np.float32)
        for x, y in rng.integers(0, (W, H), size=(300, 2)).tolist():
            cv2.line(layer, (x, y), (x + 3, y + 14), 40.0, 1)
        out = out + layer[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def frames(
    name: str | Variant, start: float = 0.0, end: float = DURATION, path: Path = FOOTAGE
) -> Iterator[tuple[float, np.ndarray]]:
    """(t, BGR 640x360) of a variant (by name, or a Variant made for a test) at 5 fps; the same
    frames every time (seeded per variant and start)."""
    variant = VARIANTS[name] if isinstance(name, str) else name
    rng = np.random.default_rng([variant.seed, int(start * 1000)])
    for t, frame in source_frames(start, end, path):
        yield t, apply(variant, t, frame, rng)
