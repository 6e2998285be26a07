"""Turn a camera's config into concrete stream specs (what PyAV opens, with which options).

Passwords live only inside `StreamSpec.url`; everything that is printed or logged uses
`StreamSpec.display`, which has them masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from edge_agent.capture.kinds import SourceKind, classify, mask_secrets
from edge_agent.capture.udp import UdpBuffer, udp_buffer
from edge_agent.config.schema import CameraConfig
from firmware_configs import load_profile


@dataclass(frozen=True)
class StreamSpec:
    kind: SourceKind
    url: str
    display: str
    options: dict[str, str] = field(default_factory=dict)
    format: str | None = None
    udp_buffer: UdpBuffer | None = None  # RTSP over UDP: the receive buffer asked for and granted

    @property
    def live(self) -> bool:
        return self.kind != "file"


@dataclass(frozen=True)
class CameraSources:
    main: StreamSpec
    detect: StreamSpec | None  # None: analysis decodes the main stream


def _password(camera: CameraConfig) -> str:
    if camera.password_file is not None:
        return camera.password_file.read_text(encoding="utf-8").splitlines()[0].strip()
    if camera.password is not None:
        return camera.password.get_secret_value()
    return ""


def _with_credentials(url: str, camera: CameraConfig) -> str:
    """Insert username/password into an explicit rtsp:// source that has none."""
    if camera.username is None or "@" in url.split("/", 3)[2]:
        return url
    userinfo = quote(camera.username, safe="") + ":" + quote(_password(camera), safe="") + "@"
    return url.replace("://", "://" + userinfo, 1)


def stream_spec(source: str, camera: CameraConfig, from_profile: bool = False) -> StreamSpec:
    kind = classify(source)
    if kind == "rtsp":
        # A profile's template places the credentials itself (some firmware wants them in the path).
        url = source if from_profile else _with_credentials(source, camera)
        # stimeout/timeout are in microseconds; the read timeout also guards a stalled TCP session.
        timeout_us = str(int(camera.reconnect.read_timeout_seconds * 1_000_000))
        options = {"rtsp_transport": camera.transport, "timeout": timeout_us, "allowed_media_types": "video"}
        buffer = None
        if camera.transport == "udp":
            # FFmpeg's own 384 KiB loses datagrams of a high bit rate camera (see capture.udp).
            buffer = udp_buffer()
            options["buffer_size"] = str(buffer.granted)
        return StreamSpec("rtsp", url, mask_secrets(url), options, udp_buffer=buffer)
    if kind == "v4l2":
        device = source.removeprefix("v4l2://")
        # Ask the UVC camera for its H.264 output: the recorder stores what the camera encodes.
        return StreamSpec("v4l2", device, device, {"input_format": "h264"}, format="v4l2")
    return StreamSpec("file", str(Path(source)), str(Path(source)))


def resolve_sources(camera: CameraConfig) -> CameraSources:
    main_url = camera.source
    detect_url = camera.detect_source
    main_from_profile = detect_from_profile = False
    if camera.profile is not None and camera.host is not None:
        profile = load_profile(camera.profile)
        values = {
            "host": camera.host,
            "port": str(camera.port or profile.rtsp_port),
            "channel": str(camera.channel),
            "user": quote(camera.username or "", safe=""),
            "password": quote(_password(camera), safe=""),
            "userinfo": "",
        }
        if camera.username:
            values["userinfo"] = f"{values['user']}:{values['password']}@"
        if main_url is None:
            main_url, main_from_profile = profile.main_url.format(**values), True
        if detect_url is None and profile.sub_url is not None:
            detect_url, detect_from_profile = profile.sub_url.format(**values), True
    assert main_url is not None  # guaranteed by CameraConfig's validator
    main = stream_spec(main_url, camera, main_from_profile)
    detect = None
    if detect_url and detect_url != main_url:
        detect = stream_spec(detect_url, camera, detect_from_profile)
    return CameraSources(main=main, detect=detect)
