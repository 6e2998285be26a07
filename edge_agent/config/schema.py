"""The agent's configuration model.

Every field has bounds and a description: the description is what `diaolou-agent config init`
writes as a comment and what docs/configuration.md lists, so the three never disagree.
Unknown keys are rejected everywhere (a typo such as `retain_day` must not silently fall back
to a default and delete a week of video early), and so are control characters in any string (an
escaped tab or bell in a URL or path is never what the installer meant).

The schema judges values only. Whether a file exists or a directory is writable on this box is
checked separately (edge_agent/config/runtime.py), by `run` and `config check`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from contract.broker import check_broker_url
from edge_agent.capture.kinds import classify, mask_secrets
from edge_agent.config.base import Name, Point, Strict
from edge_agent.config.doors import DoorConfig, check_door_cameras

# Validation context key: the config is a whole agent config (a file `run` will use), not a fragment
# built by a test or a provisioning snippet. Only a whole config must have a camera or a door.
WHOLE = "whole"


class ReconnectConfig(Strict):
    initial_seconds: float = Field(
        1.0, ge=0.1, le=60, description="Wait before the first reconnect attempt after a camera drops."
    )
    max_seconds: float = Field(
        60.0, ge=1, le=3600, description="Cap of the exponential backoff between reconnect attempts."
    )
    open_timeout_seconds: float = Field(
        10.0, ge=1, le=120, description="Give up opening a V4L2 device after this long (RTSP: see read_timeout)."
    )
    read_timeout_seconds: float = Field(
        10.0,
        ge=1,
        le=120,
        description="An RTSP connection attempt, or a stream that delivers no packet, gives up after this long "
        "and counts as dropped.",
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


# A polygon in normalised frame coordinates: [[x, y], ...] with 0 <= x, y <= 1, at least 3 points.
Polygon = Annotated[list[Point], Field(min_length=3, max_length=64)]

ARMED_PATTERN = r"^(always|([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00))$"


class MotionConfig(Strict):
    threshold: int = Field(
        20,
        ge=1,
        le=255,
        description="Grey-level change (0-255) a pixel needs to count as motion; the detector "
        "raises it by itself when the picture is noisy (night, rain).",
    )
    min_area: float = Field(
        0.002,
        ge=0,
        le=1,
        description="Smallest motion region, as a share of the frame area; smaller blobs "
        "(insects, rain drops, noise) are ignored.",
    )
    lightning_fraction: float = Field(
        0.5,
        gt=0,
        le=1,
        description="When more than this share of the frame changes at once (lights on, IR cut "
        "filter at dusk, clouds), the background is recalibrated instead of reporting motion.",
    )
    masks: list[Polygon] = Field(
        default_factory=list, description="Polygons where motion is ignored (swaying trees, a busy road)."
    )


class ZoneConfig(Strict):
    polygon: Polygon = Field(description="The zone, in normalised coordinates [[x, y], ...].")
    min_frames: int = Field(
        2, ge=1, le=100, description="Analysed frames a person's feet must be inside the zone before it counts."
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
    model: str = Field(
        "auto",
        description="Person detector from the model registry (diaolou-agent models list). auto = the "
        "recommended model when installed (yolox-nano), else the built-in hog-people.",
    )
    threshold: float = Field(0.45, gt=0, lt=1, description="Minimum detector score for a detection to be tracked.")
    min_score: float = Field(
        0.6,
        gt=0,
        lt=1,
        description="A track becomes a person only when the median of its recent scores reaches this, so "
        "one-frame false positives never alert.",
    )
    score_window: int = Field(5, ge=1, le=50, description="How many recent scores the median is taken over.")
    min_hits: int = Field(3, ge=1, le=50, description="Detections a track needs before it can become a person.")
    full_frame: bool = Field(
        False,
        description="Run the detector on the whole frame every analysed frame (a box with spare CPU) instead "
        "of only on regions with motion or tracked people.",
    )
    recheck_seconds: float = Field(
        2.0, gt=0, le=60, description="A person standing still (no motion) is re-checked this often."
    )
    night_sweep_seconds: float = Field(
        4.0,
        ge=0,
        le=60,
        description="At night (a dark picture), the detector also looks at the whole frame this often, whatever "
        "motion says: a dark person often moves too faintly for motion. Each look costs about as much as 10 "
        "motion frames. 0 = off. Not with hog-people, which keeps to the regions around motion.",
    )
    end_after_seconds: float = Field(
        5.0,
        gt=0,
        le=600,
        description="An event ends when no person has been seen for this long (a person who leaves and comes "
        "back sooner stays in the same event).",
    )
    pre_roll_seconds: float = Field(5.0, ge=0, le=120, description="Clip window starts this long before the event.")
    post_roll_seconds: float = Field(5.0, ge=0, le=120, description="Clip window ends this long after the event.")
    armed: list[Annotated[str, Field(pattern=ARMED_PATTERN)]] = Field(
        default_factory=lambda: ["always"],
        description='When person events are raised, in the site\'s local time: ["always"] or ranges such as '
        '["22:00-06:00"] (a range may cross midnight).',
    )
    zones: dict[Name, ZoneConfig] = Field(
        default_factory=dict, description="Named zones; with zones, only people inside one raise events."
    )
    object_masks: list[Polygon] = Field(
        default_factory=list, description="Polygons where person detections are ignored (a poster, a statue)."
    )
    motion: MotionConfig = Field(default_factory=MotionConfig)

    @field_validator("armed")
    @classmethod
    def _ranges_not_empty(cls, value: list[str]) -> list[str]:
        for text in value:
            start, _, end = text.partition("-")
            if end and start == end:
                raise ValueError(f'{text!r} is an empty range; write "always" for all day')
        return value


Transport = Literal["tcp", "udp"]

RTSP_HINT = "expected rtsp://[user:password@]host[:port]/path"


def check_rtsp_url(url: str) -> str:
    """The URL unchanged, or ValueError saying what is malformed (the password masked)."""
    shown = mask_secrets(url)
    if any(c.isspace() for c in url):
        raise ValueError(f"malformed RTSP URL {shown!r}: it contains a space (write it as %20); {RTSP_HINT}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        raise ValueError(f"malformed RTSP URL {shown!r}: {exc}; {RTSP_HINT}") from None
    if not parts.hostname:
        raise ValueError(f"malformed RTSP URL {shown!r}: no host; {RTSP_HINT}")
    return url


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
        if value is None:
            return None
        if not value.strip():
            raise ValueError(
                "is empty: give an rtsp:// URL, a video file or /dev/videoN, or remove the key to use profile + host"
            )
        if classify(value) == "rtsp":  # classify raises ValueError naming an unsupported scheme
            check_rtsp_url(value)
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
    enabled: bool = Field(
        True, description="Send events and heartbeats to the hub. false: a stand-alone box (events stay local)."
    )
    url: str = Field(
        "mqtt://127.0.0.1:1883",
        description="Broker URL: mqtt://[user:password@]host:port, or mqtts:// for TLS. ${ENV_VAR} works here.",
    )
    protocol: Literal["v5", "v311"] = Field(
        "v5",
        description="MQTT version. v5 for Mosquitto (production); v311 for the hub's embedded one-box broker.",
    )
    ca_file: Path | None = Field(None, description="CA certificate for mqtts:// (default: the system's CAs).")
    client_id: str | None = Field(
        None, max_length=128, description="MQTT client id; default diaolou-<site>-<device>. Unique per broker."
    )
    keepalive_seconds: int = Field(30, ge=5, le=600, description="MQTT keepalive; the last will fires after ~1.5x.")
    heartbeat_seconds: float = Field(10.0, ge=1, le=3600, description="How often a heartbeat is sent (QoS 0).")
    outbox_max_mb: float = Field(
        50.0,
        gt=0,
        le=10_000,
        description="Local outbox bound while the link is down; when full, the lowest-priority oldest "
        "messages are dropped first and counted.",
    )

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        return check_broker_url(value)


class HubLinkConfig(Strict):
    """The hub's web API, where the box uploads evidence clips (docs/evidence.md, "For the box")."""

    url: str | None = Field(
        None,
        max_length=300,
        description="http(s)://HOST:PORT of the hub (a path prefix is allowed); unset: clip requests fail "
        "with a clear reason.",
    )
    token_file: Path | None = Field(
        None, description="File holding this box's device token (`diaolou-hub devices token`), mode 0600."
    )
    list_key: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9+/]{43}=$",
        description="A gate box: the hub's allow-list public key (base64, `diaolou-hub cards public-key`); only "
        "lists it signed are applied. Unset: the box keeps the list it was given by `gate import`.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError(f"hub url must look like http(s)://HOST:PORT, got {value!r}")
        if parts.username or parts.password:
            raise ValueError("hub url must not hold credentials: the device token goes in token_file")
        parts.port  # noqa: B018  (raises ValueError for a port that is no number or out of range)
        return value.rstrip("/")

    @model_validator(mode="after")
    def _both_or_neither(self) -> HubLinkConfig:
        if (self.url is None) != (self.token_file is None):
            raise ValueError("give both hub.url and hub.token_file, or neither")
        return self


class Defaults(Strict):
    """Values merged into every camera; a camera's own keys win."""

    transport: Transport = Field("tcp", description="Default RTSP transport.")
    record: RecordConfig = Field(default_factory=RecordConfig)
    detect: DetectConfig = Field(default_factory=DetectConfig)
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)


class AgentConfig(Strict):
    site: Name = Field("site", description="Site id (village or dormitory); used in MQTT topics.")
    timezone: str = Field(
        "Asia/Shanghai", description="IANA time zone for arming schedules (times on disk are always UTC)."
    )
    models_dir: Path = Field(
        Path("/var/lib/diaolou/models"),
        description="Installed detector models (diaolou-agent models install); survives upgrades.",
    )
    device: Name = Field("box", description="This box's id, unique within the site.")
    storage: StorageConfig = Field(default_factory=StorageConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    hub: HubLinkConfig = Field(default_factory=HubLinkConfig)
    defaults: Defaults = Field(default_factory=Defaults)
    doors: dict[Name, DoorConfig] = Field(
        default_factory=dict,
        description="Gate doors by id (lower-case letters, digits, - and _): their building and card reader. "
        "Decisions use the allow-list in <storage.root>/gate.db (docs/gates.md).",
    )
    cameras: dict[Name, CameraConfig] = Field(
        default_factory=dict,
        validate_default=True,
        description="Cameras by id (lower-case letters, digits, - and _). A box needs at least one camera or "
        "one gate door under `doors`.",
    )

    @field_validator("cameras")
    @classmethod
    def _a_camera_or_a_door(cls, value: dict[str, CameraConfig], info: ValidationInfo) -> dict[str, CameraConfig]:
        # `doors` is validated first; when it failed it is absent here and its own error is enough.
        if not value and info.context and info.context.get(WHOLE) and info.data.get("doors") == {}:
            raise ValueError(
                "no camera or gate door configured: add at least one camera under `cameras:`, e.g. "
                "`shop: {source: rtsp://192.168.1.64/Streaming/Channels/101}`, or a gate door under `doors:`, "
                "e.g. `b07-east: {building: b07}`"
            )
        return value

    @model_validator(mode="after")
    def _door_cameras(self) -> AgentConfig:
        check_door_cameras(self.doors, {name: cam.detect.enabled for name, cam in self.cameras.items()})
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value
