"""Device profiles: every shipped profile loads and builds the URLs its vendor documents."""

from __future__ import annotations

import pytest

from edge_agent.capture.sources import resolve_sources
from edge_agent.config import ConfigError, parse_config
from firmware_configs import ProfileError, load_profile, profile_names

VENDORS = {"hikvision", "dahua", "uniview", "tplink-vigi", "tapo", "xiongmai-onvif"}


def test_all_profiles_load_with_thin_link_encoder_settings() -> None:
    assert set(profile_names()) >= VENDORS
    for name in profile_names():
        profile = load_profile(name)
        assert profile.sub_url, f"{name} has no sub stream for detection"
        assert profile.main_encoder.codec == "h264"
        assert 10 <= profile.main_encoder.fps <= 15
        assert profile.sub_encoder is not None and profile.sub_encoder.resolution == "640x360"


@pytest.mark.parametrize(
    ("profile", "main", "sub"),
    [
        (
            "hikvision",
            "rtsp://admin:pw@cam:554/Streaming/Channels/301",
            "rtsp://admin:pw@cam:554/Streaming/Channels/302",
        ),
        (
            "dahua",
            "rtsp://admin:pw@cam:554/cam/realmonitor?channel=3&subtype=0",
            "rtsp://admin:pw@cam:554/cam/realmonitor?channel=3&subtype=1",
        ),
        ("uniview", "rtsp://admin:pw@cam:554/unicast/c3/s0/live", "rtsp://admin:pw@cam:554/unicast/c3/s1/live"),
        ("tapo", "rtsp://admin:pw@cam:554/stream1", "rtsp://admin:pw@cam:554/stream2"),
        (
            "xiongmai-onvif",
            "rtsp://cam:554/user=admin&password=pw&channel=3&stream=0.sdp?real_stream",
            "rtsp://cam:554/user=admin&password=pw&channel=3&stream=1.sdp?real_stream",
        ),
    ],
)
def test_profile_urls(profile: str, main: str, sub: str) -> None:
    config = parse_config(
        f"cameras:\n  c: {{profile: {profile}, host: cam, channel: 3, username: admin, password: pw}}\n"
    )
    sources = resolve_sources(config.cameras["c"])
    assert sources.main.url == main
    assert sources.detect is not None and sources.detect.url == sub
    assert "pw" not in sources.main.display.replace("password=***", "")


def test_explicit_source_overrides_profile_and_unknown_profile_fails() -> None:
    config = parse_config("cameras:\n  c: {profile: dahua, host: cam, source: 'rtsp://other/x'}\n")
    assert resolve_sources(config.cameras["c"]).main.url == "rtsp://other/x"
    with pytest.raises(ConfigError, match=r"cameras\.c\.profile: unknown camera profile 'nonesuch'"):
        parse_config("cameras:\n  c: {profile: nonesuch, host: cam}\n")
    with pytest.raises(ProfileError):
        load_profile("nonesuch")
