"""What the pipeline does for the person detector when the picture is dark (night mode).

Measured on the night test set (tests/support/night.py, H.264 as the bench encodes it, yolox-nano;
figures in bench/results/night.md and docs/detection.md):

- The regions around motion were too small at night. The detector scales what it is given to
  its input (416 px for yolox-nano); a crop around a person is enlarged, and so is the sensor
  noise, while the whole 640x360 frame is shrunk, which averages the noise out. On the same
  frames the detector found the person on the whole frame where it found nothing on the crop
  around them. So at night every look is a look at the whole frame: for a model with a fixed
  input size it costs the same as a crop, and several regions become one run.
- Motion can miss a dark person for whole seconds (one standing still never moves at all), so
  at night the detector also looks at the whole frame every `detect.night_sweep_seconds`
  whatever motion says (`NightSweep`); one look costs about as much as 10 motion frames.
- Brightening the detector's input (a gamma curve to a mean of 110, CLAHE, a linear gain) was
  tried and is not done: on the raw frames gamma took the dark variant from 65 % to 100 % of the
  frames with the person found, but on the H.264 frames a camera sends (dark areas coarsely
  quantised) gamma and CLAHE found fewer people than the plain picture, and a linear gain found
  one more visitor on the darkest variant and raised an event on an empty stretch of another.
"""

from __future__ import annotations

EPSILON = 1e-6  # frame times are floats: 2.0 s after 24.4 s must be due at 26.4 s


class NightSweep:
    """When, at night, the detector looks at the whole frame whatever motion says."""

    def __init__(self, every_seconds: float) -> None:
        if every_seconds < 0:
            raise ValueError(f"night sweep interval must be >= 0 seconds (0 = off), got {every_seconds}")
        self.every = every_seconds
        self.last: float | None = None

    def due(self, t: float, night: bool) -> bool:
        """True when the frame at `t` should be a whole-frame look (and counts it as done)."""
        if not night or self.every == 0:
            return False
        # A clock that went backwards (a reconnect with a new time base) starts the cadence again.
        if self.last is None or t < self.last or t - self.last >= self.every - EPSILON:
            self.last = t
            return True
        return False
