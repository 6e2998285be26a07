"""Motion settings of one camera, and the config (what the installer writes) to them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge_agent.config.schema import MotionConfig
from edge_agent.motion.reference import MotionParams
from models.motion_graph import CELL

Point = tuple[float, float]


@dataclass(frozen=True)
class MotionSettings:
    """Motion settings of one camera. Defaults are tuned for a 5 fps detection stream.

    threshold: smallest grey-level difference (0-255, after blur) that counts as change. 20 keeps
        sensor noise, compression and small exposure drifts out while a person in dark or light
        clothes against a street scene differs by 40-150.
    noise_factor: the threshold rises to noise_factor x the running noise estimate (mean absolute
        difference of still pixels) when that is higher. 5 x mean|N| is ~4 sigma of Gaussian noise:
        night noise is spatially correlated (denoiser, encoder), so it comes in blobs that survive
        the blur, and at 4 x (3.2 sigma) such blobs still made boxes in the tests.
    min_area: smallest moving area kept, as a fraction of the frame (pixels of the dilated mask,
        summed over merged components): 0.002 of a 320x180 analysis image is 115 pixels, a blob of
        ~6x8 pixels before dilation, i.e. someone ~16 px tall in a 640x360 frame. Rain drops,
        insects and single noisy pixels (25 pixels once dilated) stay below it.
    masks: polygons where motion is ignored (swaying foliage, a road), each a sequence of (x, y)
        points in normalised frame coordinates: 0-1 from the left/top edge to the right/bottom
        edge, so they stay right when the detection stream's resolution changes.
    width: width of the analysis image in pixels (the height keeps the aspect ratio); smaller is
        faster and less sensitive to small, distant objects.
    alpha: background update rate per analysed frame where nothing moves (0.05 at 5 fps: time
        constant ~4 s, enough to follow daylight and the camera's exposure drift).
    alpha_motion: update rate under the motion mask until absorb_frames is reached (0.01: someone
        walking through leaves no trail in the background).
    noise_rate: update rate of the noise estimate per analysed frame (~4 s at 5 fps).
    absorb_frames: whatever stays under the motion mask and still (within the threshold of the
        previous frame) for this many analysed frames in a row becomes background at once (10 = 2 s
        at 5 fps), with the masked pixels around it: a person who stopped (the tracker keeps them),
        a parked car, and above all the "ghost" left where a still object was, which a running
        average would take 10 s or more to forget. Only still frames count: someone walking towards
        the camera stays under the mask for seconds, and absorbing them left a ghost of their shape.
    lightning_fraction: share of the analysed area that, changing at once, means a lighting change
        rather than an intruder; the detector then recalibrates.
    recalibrate_seconds: how long a recalibration lasts (auto exposure and IR cut filters settle in
        about a second; a change that is still going on triggers another recalibration).
    merge_distance: components closer than this (fraction of the analysis width) are one object.
    max_gap_seconds: a longer gap between frames (reconnect) restarts from a fresh background.
    weak_factor, integrate_rate: in the dark, a pixel counts as motion when its running mean of
        the signed difference (rate integrate_rate per analysed frame, over 5x5 pixels) is over
        weak_factor x its threshold, and only then: a person is a weak but consistent change,
        while sensor noise, rain and a ghost's flickering edge are fresh every frame and average
        out (rate 0.35: the mean's noise is 0.46 x one frame's, so half the threshold, ~2 sigma of
        one frame, is ~4 sigma of the mean). One frame over the threshold, which is what counts
        by day, made most of the false motion at night. By day it is off: slow lighting drift is
        weak and consistent too.
    dark_level: below this mean background brightness (grey levels) the picture is "dark" (night
        mode: MotionResult.night) and the sensitivity floor `threshold` scales down with the
        brightness, to floor_min x threshold at the least; the per-region noise threshold then
        does the work of keeping noise out.
    gain_jump: a global brightness change by more than this factor in one frame (the camera
        switching between colour and infrared, floodlights) recalibrates like a lighting change;
        smaller steps (a porch light, passing headlights, auto exposure) are absorbed by the gain
        model without a recalibration.
    """

    threshold: float = 20.0
    noise_factor: float = 5.0
    min_area: float = 0.002
    masks: Sequence[Sequence[Point]] = ()
    width: int = 320
    alpha: float = 0.05
    alpha_motion: float = 0.01
    noise_rate: float = 0.05
    absorb_frames: int = 10
    lightning_fraction: float = 0.5
    recalibrate_seconds: float = 1.0
    merge_distance: float = 0.03
    max_gap_seconds: float = 10.0
    weak_factor: float = 0.5
    integrate_rate: float = 0.35
    dark_level: float = 80.0
    floor_min: float = 0.1
    gain_jump: float = 1.25

    def __post_init__(self) -> None:
        # Frozen: store the polygons as tuples so that the settings are hashable and cannot change.
        polygons = tuple(tuple((float(x), float(y)) for x, y in poly) for poly in self.masks)
        object.__setattr__(self, "masks", polygons)
        for poly in polygons:
            if len(poly) < 3:
                raise ValueError(f"a mask polygon needs at least 3 points: {poly}")
            if any(not (0.0 <= v <= 1.0) for point in poly for v in point):
                raise ValueError(f"mask polygon points are normalised (0-1): {poly}")
        if not 0 < self.threshold < 255:
            raise ValueError("threshold must be in (0, 255)")
        if self.noise_factor < 0:
            raise ValueError("noise_factor must be >= 0")
        if not 0 <= self.min_area < 1:
            raise ValueError("min_area is a fraction of the frame, in [0, 1)")
        if not 2 * CELL <= self.width <= 1920:
            raise ValueError(f"width must be in [{2 * CELL}, 1920]")
        for name in ("alpha", "alpha_motion", "noise_rate"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1]")
        if self.absorb_frames < 1:
            raise ValueError("absorb_frames must be >= 1")
        if not 0 < self.lightning_fraction <= 1:
            raise ValueError("lightning_fraction must be in (0, 1]")
        if not 0 < self.weak_factor <= 1 or not 0 < self.integrate_rate <= 1:
            raise ValueError("weak_factor and integrate_rate must be in (0, 1]")
        if self.dark_level < 0 or not 0 < self.floor_min <= 1 or self.gain_jump <= 1:
            raise ValueError("dark_level must be >= 0, floor_min in (0, 1], gain_jump > 1")
        if self.recalibrate_seconds < 0 or self.merge_distance < 0 or self.max_gap_seconds <= 0:
            raise ValueError("recalibrate_seconds and merge_distance must be >= 0, max_gap_seconds > 0")

    def params(self) -> MotionParams:
        return MotionParams(
            self.threshold,
            self.noise_factor,
            self.alpha,
            self.alpha_motion,
            self.noise_rate,
            self.absorb_frames,
            self.weak_factor,
            self.integrate_rate,
            self.dark_level,
            self.floor_min,
        )

    def recalibration_params(self) -> MotionParams:
        # The background follows the picture (rate 1) and the noise estimate re-learns quickly:
        # at night the IR image is much noisier than the day image it replaces. Nothing counts as
        # changed meanwhile (sensitivity 255), so the noise is learnt from every pixel: with a
        # threshold still at the old, lower noise, the noisiest pixels would be masked out and the
        # estimate would stay low. Frame-to-frame differences overestimate the noise by ~1.4x,
        # the safe side, and the normal rate brings it down within seconds.
        p = self.params()
        return MotionParams(
            255.0,
            p.noise_factor,
            RECALIBRATION_RATE,
            RECALIBRATION_RATE,
            RECALIBRATION_NOISE_RATE,
            p.absorb_frames,
            p.weak_factor,
            p.integrate_rate,
            p.dark_level,
            p.floor_min,
        )


RECALIBRATION_NOISE_RATE = 0.3
# Background rate while recalibrating: fast enough to follow a lighting change within the window
# (1 - 0.5 ** 5: 97 % at 5 fps), slow enough to average the sensor noise out of the new background
# (at rate 1 it would freeze one frame's noise into it, which the night integration would see).
RECALIBRATION_RATE = 0.5


def motion_settings(config: MotionConfig) -> MotionSettings:
    return MotionSettings(
        threshold=float(config.threshold),
        min_area=config.min_area,
        masks=[[(float(x), float(y)) for x, y in polygon] for polygon in config.masks],
        lightning_fraction=config.lightning_fraction,
    )
