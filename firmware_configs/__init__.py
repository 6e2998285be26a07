"""Device profiles for camera families a village buys, and example agent configs.

A profile holds the RTSP URL templates for the main and sub streams and the encoder settings
we recommend for thin rural links. Profiles are YAML files in `profiles/`; this module loads
and validates them so a typo in a shipped profile fails the tests, not an installation.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

PROFILE_DIR = Path(__file__).parent / "profiles"
EXAMPLE_DIR = Path(__file__).parent / "examples"


class EncoderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    codec: str = Field(description="Video codec to set on the camera (h264 for widest compatibility).")
    resolution: str = Field(description="WIDTHxHEIGHT.")
    fps: int = Field(ge=1, le=60)
    bitrate_kbps: int = Field(ge=64, le=16384, description="Cap for variable bit rate.")
    gop_seconds: float = Field(gt=0, le=10, description="I-frame interval; segments and clips cut on these.")
    notes: str = ""


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    vendor: str
    models: list[str] = Field(default_factory=list, description="Example models this profile was written for.")
    rtsp_port: int = Field(554, ge=1, le=65535)
    main_url: str = Field(description="Template: {userinfo} {user} {password} {host} {port} {channel}.")
    sub_url: str | None = None
    onvif_port: int | None = None
    main_encoder: EncoderSettings
    sub_encoder: EncoderSettings | None = None
    notes: str = ""


class ProfileError(ValueError):
    pass


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


@cache
def load_profile(name: str) -> Profile:
    if name not in profile_names():
        raise ProfileError(f"unknown camera profile {name!r}; known: {', '.join(profile_names())}")
    data = yaml.safe_load((PROFILE_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    return Profile.model_validate(data)
