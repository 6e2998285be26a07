"""Frigate's ImprovedMotionDetector, loaded from a copy of its public source kept outside the repo.

Get the file (MIT licence) once, for example:

    mkdir -p /tmp/frigate-motion && curl -o /tmp/frigate-motion/improved_motion.py \\
        https://raw.githubusercontent.com/blakeblackshear/frigate/dev/frigate/motion/improved_motion.py

or from a clone: `git -C frigate show HEAD:frigate/motion/improved_motion.py > .../improved_motion.py`.
It needs scipy (`.venv/bin/pip install scipy`; not a project dependency).

The module imports a few Frigate names; they are stood in for here with exactly what the detector
uses: its motion config with Frigate's defaults (frigate/config/camera/motion.py: threshold 30,
lightning_threshold 0.8, skip_motion_threshold None, improve_contrast True, contour_area 10,
delta_alpha 0.2, frame_alpha 0.01, frame_height 100) and no mask, no PTZ. Frigate hands the
detector the Y plane of the frame; so does the bench (the grey frame).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PATH = Path("/tmp/frigate-motion/improved_motion.py")


@dataclass
class FrigateMotionConfig:
    """Frigate's MotionConfig defaults (RuntimeMotionConfig adds the rasterised mask)."""

    frame_shape: tuple[int, int]
    enabled: bool = True
    threshold: int = 30
    lightning_threshold: float = 0.8
    skip_motion_threshold: float | None = None
    improve_contrast: bool = True
    contour_area: int | None = 10
    delta_alpha: float = 0.2
    frame_alpha: float = 0.01
    frame_height: int | None = 100
    rasterized_mask: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.rasterized_mask = np.full(self.frame_shape, 255, dtype=np.uint8)  # 255 = not masked


def _grab_cv2_contours(cnts: Any) -> Any:
    return cnts[0] if len(cnts) == 2 else cnts[1]


def load(path: Path = DEFAULT_PATH) -> type | str:
    """The ImprovedMotionDetector class, or why it cannot be loaded (a sentence)."""
    if not path.is_file():
        return f"Frigate's motion detector not found at {path} (see bench/frigate_peer.py for how to get it)"
    try:
        import scipy.ndimage  # noqa: F401
    except ImportError:
        return "Frigate's motion detector needs scipy: .venv/bin/pip install scipy"
    stubs = {
        "frigate": types.ModuleType("frigate"),
        "frigate.camera": types.ModuleType("frigate.camera"),
        "frigate.config": types.ModuleType("frigate.config"),
        "frigate.config.config": types.ModuleType("frigate.config.config"),
        "frigate.motion": types.ModuleType("frigate.motion"),
        "frigate.util": types.ModuleType("frigate.util"),
        "frigate.util.image": types.ModuleType("frigate.util.image"),
    }
    stubs["frigate.camera"].PTZMetrics = object  # type: ignore[attr-defined]
    stubs["frigate.config.config"].RuntimeMotionConfig = FrigateMotionConfig  # type: ignore[attr-defined]
    stubs["frigate.motion"].MotionDetector = object  # type: ignore[attr-defined]
    stubs["frigate.util.image"].grab_cv2_contours = _grab_cv2_contours  # type: ignore[attr-defined]
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        spec = importlib.util.spec_from_file_location("frigate_improved_motion", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as exc:
        return f"Frigate's motion detector at {path} does not load: {type(exc).__name__}: {exc}"
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    cls: type = module.ImprovedMotionDetector
    return cls


class FrigateMotion:
    """One camera's Frigate detector with its defaults; `update(grey)` -> motion (boxes and not calibrating)."""

    def __init__(self, cls: type, width: int, height: int, fps: int) -> None:
        self.detector = cls((height, width), FrigateMotionConfig((height, width)), fps)

    def update(self, grey: np.ndarray) -> bool:
        boxes = self.detector.detect(grey)
        return bool(boxes) and not self.detector.is_calibrating()
