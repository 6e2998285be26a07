"""Config (what the installer writes) to the motion detector's settings."""

from __future__ import annotations

from edge_agent.config.schema import MotionConfig
from edge_agent.motion.detector import MotionSettings


def motion_settings(config: MotionConfig) -> MotionSettings:
    return MotionSettings(
        threshold=float(config.threshold),
        min_area=config.min_area,
        masks=[[(float(x), float(y)) for x, y in polygon] for polygon in config.masks],
        lightning_fraction=config.lightning_fraction,
    )
