"""The agent's configuration model.

Every field has bounds and a description: the description is what `diaolou-agent config init`
writes as a comment and what docs/configuration.md lists, so the three never disagree.
Unknown keys are rejected everywhere (a typo such as `retain_day` must not silently fall back
to a default and delete a week of video early).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from edge_agent.capture.kinds import classify

# Camera names become directory names and (later) MQTT topic levels: keep them to a safe alphabet.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReconnectConfig(Strict):
    initial_seconds: float = Field(
        1.0, ge=0.1, le=60, description="Wait before the first reconnect attempt after a camera drops."
    )
    max_seconds: float = Field(
        60.0, ge=1, le=3600, description="Cap of the exponential backoff between reconnect attempts."
    )
    open_timeout_seconds: float = Field(
        10.0, ge=1, le=120, description="Give up opening a stream (DNS, TCP, RTSP handshake) after this long."
    )
    read_timeout_seconds: float = Field(
        10.0, ge=1, le=120, description="A stream that delivers no packet for this long counts as dropped."
    )

    @model_validator(mode="after")
    def _cap_not_below_start(self) -> ReconnectConfig:
        if self.max_seconds < self.initial_seconds:
            raise ValueError("max_seconds must be >= initial_seconds")
        return self


class RecordConfig(Strict):
    enabled: bool = Field(True, description="Record the main stream into the ring buffer.")
    segment_seconds: float = Field(
        10.0,
        ge=2,
        le=300,
        description="Target segment length. Segments are cut on the first keyframe after this much video, "
        "so a camera with a long GOP gives longer segments.",
    )
    retain_days: float = Field(
        7.0,
        gt=0,
        le=365,
        description="Delete segments older than this many days (oldest first; never what is on legal hold).",
    )


class DetectConfig(Strict):
    enabled: bool = Field(
        True,
        description="Decode the detection stream for analysis. false = record only (hallway cameras that never "
        "alert); no decoding CPU is spent.",
    )
    fps: float = Field(5.0, gt=0, le=30, description="Frames per second handed to analysis.")
    width: int = Field(
        640, ge=64, le=3840, description="Analysis frames are downscaled to this width (aspect ratio kept)."
    )


Transport = Literal["tcp", "udp"]


class CameraConfig(Strict):
    """One camera. Either `source` (an explicit URL, file or device) or `profile` + `host`."""

    source: str | None = Field(
        None,
        description="Main stream: rtsp://..., a video file path (looped, paced to real time) or a V4L2 device "
        "(/dev/videoN). Overrides the profile's template.",
    )
    detect_source: str | None = Field(
        None,
        description="Stream decoded for analysis (the camera's sub stream). Defaults to the profile's sub "
        "stream, or the main stream when there is none.",
    )
    profile: str | None = Field(
        None, description="Device profile from firmware_configs/profiles (e.g. hikvision, dahua, uniview)."
    )
    host: str | None = Field(None, description="Camera address (IP or DNS name) used with the profile.")
    port: int | None = Field(None, ge=1, le=65535, description="RTSP port; the profile's default when unset.")
    channel: int = Field(1, ge=1, le=256, description="Channel number for NVR-style URL templates.")
    username: str | None = Field(None, description="RTSP user name.")
    password: SecretStr | None = Field(
        None,
        description="RTSP password. Write ${ENV_VAR} to read it from the environment; never logged.",
    )
    password_file: Path | None = Field(
        None, description="Read the RTSP password from this file (first line) instead of `password`."
    )
    transport: Transport = Field(
        "tcp", description="RTSP transport: tcp (interleaved, survives lossy links and NAT) or udp."
    )
    record: RecordConfig = Field(default_factory=RecordConfig)
    detect: DetectConfig = Field(default_factory=DetectConfig)
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)

    @field_validator("source", "detect_source")
    @classmethod
    def _known_kind(cls, value: str | None) -> str | None:
        if value is not None:
            classify(value)  # raises ValueError naming the unsupported scheme
        return value

    @model_validator(mode="after")
    def _has_a_source(self) -> CameraConfig:
        if self.source is None and (self.profile is None or self.host is None):
            raise ValueError("a camera needs `source`, or `profile` and `host`")
        if self.password is not None and self.password_file is not None:
            raise ValueError("give either `password` or `password_file`, not both")
        return self


class StorageConfig(Strict):
    root: Path = Field(
        Path("/var/lib/diaolou/recordings"),
        description="Ring-buffer directory: <root>/<camera>/<YYYY-MM-DD>/<HH>/<MM.SS>.mp4 plus index.db.",
    )
    min_free_gb: float = Field(
        1.0, ge=0, le=100_000, description="Storage floor: evict oldest segments to keep this many GB free."
    )
    min_free_percent: float = Field(
        5.0, ge=0, le=90, description="Storage floor: evict oldest segments to keep this share of the disk free."
    )
    index_flush_seconds: float = Field(
        30.0,
        ge=0,
        le=600,
        description="Batch index writes (SD cards wear out). A crash loses no segment: the index is "
        "repaired from the files on start.",
    )
    retention_interval_seconds: float = Field(
        60.0, ge=1, le=3600, description="How often retention and the storage floor are enforced."
    )


class MqttConfig(Strict):
    url: str = Field(
        "mqtt://127.0.0.1:1883",
        description="Broker URL: mqtt://[user:password@]host:port, or mqtts:// for TLS.",
    )

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        if not re.match(r"^mqtts?://([^@/\s]+@)?[^@/:\s]+(:\d{1,5})?/?$", value):
            raise ValueError("expected mqtt://[user:password@]host:port or mqtts://...")
        return value


class Defaults(Strict):
    """Values merged into every camera; a camera's own keys win."""

    transport: Transport = Field("tcp", description="Default RTSP transport.")
    record: RecordConfig = Field(default_factory=RecordConfig)
    detect: DetectConfig = Field(default_factory=DetectConfig)
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)


class AgentConfig(Strict):
    site: Name = Field("site", description="Site id (village or dormitory); used in MQTT topics.")
    device: Name = Field("box", description="This box's id, unique within the site.")
    storage: StorageConfig = Field(default_factory=StorageConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    defaults: Defaults = Field(default_factory=Defaults)
    cameras: dict[Name, CameraConfig] = Field(
        default_factory=dict, description="Cameras by id (lower-case letters, digits, - and _)."
    )
