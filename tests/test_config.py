"""Config: validation errors name the file and key path, defaults merge, secrets stay secret."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest
import yaml

from edge_agent.capture.sources import resolve_sources
from edge_agent.config import ConfigError, check_runtime, load_config, parse_config
from edge_agent.config.template import render_config
from tests.conftest import agent_cmd

MINIMAL = """
storage: {root: /tmp/x}
cameras:
  shop: {source: rtsp://10.0.0.5/stream1}
"""


def test_minimal_config_gets_every_default() -> None:
    config = parse_config(MINIMAL)
    cam = config.cameras["shop"]
    assert cam.transport == "tcp"
    assert cam.record.retain_days == 7
    assert cam.record.segment_seconds == 10
    assert cam.detect.enabled is True


def test_unknown_key_is_rejected_with_its_path() -> None:
    text = MINIMAL.replace("{source: rtsp://10.0.0.5/stream1}", "{source: rtsp://h/s, record: {retain_day: 3}}")
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="agent.yaml")
    assert "agent.yaml: cameras.shop.record.retain_day: unknown key" in str(err.value)


@pytest.mark.parametrize(
    ("snippet", "path", "words"),
    [
        ("record: {retain_days: 0}", "cameras.shop.record.retain_days", "greater than 0"),
        ("record: {segment_seconds: 1}", "cameras.shop.record.segment_seconds", "greater than or equal to 2"),
        ("transport: quic", "cameras.shop.transport", "'tcp' or 'udp'"),
        ("source: http://cam/video", "cameras.shop.source", "unsupported source"),
        ("detect: {fps: -1}", "cameras.shop.detect.fps", "greater than 0"),
    ],
)
def test_bad_values_name_key_and_problem(snippet: str, path: str, words: str) -> None:
    text = f"storage: {{root: /tmp/x}}\ncameras:\n  shop: {{source: rtsp://h/s, {snippet}}}\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="f.yaml")
    message = str(err.value)
    assert f"f.yaml: {path}:" in message
    assert words in message


def test_camera_names_are_restricted() -> None:
    with pytest.raises(ConfigError, match=r"cameras\.\.\./etc"):
        parse_config("cameras:\n  ../etc: {source: rtsp://h/s}\n")


def test_camera_needs_a_source() -> None:
    with pytest.raises(ConfigError, match="needs `source`, or `profile` and `host`"):
        parse_config("cameras:\n  a: {profile: hikvision}\n")


def test_broken_yaml_and_wrong_top_level() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config("cameras: [unclosed", source="x.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_config("- a\n- b\n")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_defaults_merge_under_camera_keys() -> None:
    config = parse_config(
        """
defaults:
  transport: udp
  record: {retain_days: 14, segment_seconds: 6}
cameras:
  a: {source: rtsp://h/a}
  b: {source: rtsp://h/b, transport: tcp, record: {retain_days: 3}}
"""
    )
    a, b = config.cameras["a"], config.cameras["b"]
    assert (a.transport, a.record.retain_days, a.record.segment_seconds) == ("udp", 14, 6)
    assert (b.transport, b.record.retain_days, b.record.segment_seconds) == ("tcp", 3, 6)


def test_password_from_environment_and_never_in_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_PW", "s3cr:t@x")
    config = parse_config(
        "cameras:\n  shop: {profile: hikvision, host: 192.168.1.64, username: admin, password: '${SHOP_PW}'}\n"
    )
    sources = resolve_sources(config.cameras["shop"])
    assert sources.main.url == "rtsp://admin:s3cr%3At%40x@192.168.1.64:554/Streaming/Channels/101"
    assert "s3cr" not in sources.main.display
    assert "s3cr" not in repr(config)
    assert sources.detect is not None and sources.detect.url.endswith("/Streaming/Channels/102")


def test_missing_environment_variable_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"cameras\.shop\.password: environment variable NOPE_NOT_SET"):
        parse_config("cameras:\n  shop: {source: rtsp://h/s, password: '${NOPE_NOT_SET}'}\n")


def test_password_file_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("filepw\n")
    (tmp_path / "video.mp4").write_bytes(b"")  # exists: runtime checks look no further
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(
        "storage: {root: rec}\ncameras:\n"
        "  gate: {profile: dahua, host: cam.local, username: u, password_file: pw, channel: 2}\n"
        "  demo: {source: video.mp4}\n"
    )
    config = load_config(cfg)
    assert config.storage.root == tmp_path / "rec"
    assert config.cameras["demo"].source == str(tmp_path / "video.mp4")
    main = resolve_sources(config.cameras["gate"]).main
    assert main.url == "rtsp://u:filepw@cam.local:554/cam/realmonitor?channel=2&subtype=0"
    check_runtime(config, str(cfg))  # the password file exists and is readable
    (tmp_path / "pw").unlink()
    load_config(cfg)  # whether a file exists is a runtime check, not the file's validity
    with pytest.raises(ConfigError, match=r"cameras\.gate\.password_file: cannot read .*/pw as user"):
        check_runtime(config, str(cfg))


def test_mqtt_url_is_validated() -> None:
    parse_config("mqtt: {url: 'mqtts://dev:pw@hub.example:8883'}")
    with pytest.raises(ConfigError, match=r"mqtt\.url"):
        parse_config("mqtt: {url: 'http://hub'}")


def test_config_init_renders_a_complete_valid_commented_config(tmp_path: Path) -> None:
    text = render_config(
        storage=tmp_path / "rec",
        cameras=[("shop", "rtsp://10.0.0.2/stream1"), ("hall", "/dev/video0")],
        site="village-7",
        device="box-1",
        mqtt="mqtt://dev:pw@hub:1883",
        record_only=True,
    )
    config = parse_config(text)
    assert config.site == "village-7" and config.mqtt.url == "mqtt://dev:pw@hub:1883"
    assert set(config.cameras) == {"shop", "hall"}
    assert all(not c.detect.enabled for c in config.cameras.values())
    raw = yaml.safe_load(text)
    # Every default is spelled out in the file, not implied.
    for key in ("segment_seconds", "retain_days"):
        assert key in raw["defaults"]["record"]
    for key in ("min_free_gb", "min_free_percent", "index_flush_seconds"):
        assert key in raw["storage"]
    assert "# Delete segments older than this many days" in text


def test_cli_config_init_and_check(tmp_path: Path) -> None:
    init = subprocess.run(
        agent_cmd(
            "config",
            "init",
            "--storage",
            str(tmp_path / "rec"),
            "--camera",
            "shop=rtsp://h/s",
            "--mqtt",
            "mqtt://hub:1883",
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    cfg = tmp_path / "a.yaml"
    cfg.write_text(init.stdout)
    ok = subprocess.run(agent_cmd("config", "check", str(cfg)), capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    cfg.write_text(init.stdout.replace("retain_days: 7.0", "retain_days: -1"))
    bad = subprocess.run(agent_cmd("config", "check", str(cfg)), capture_output=True, text=True)
    assert bad.returncode == 2
    assert f"{cfg}: defaults.record.retain_days: Input should be greater than 0" in bad.stderr
    wrong = subprocess.run(
        agent_cmd("config", "init", "--storage", "x", "--camera", "noequals"), capture_output=True, text=True
    )
    assert wrong.returncode == 1 and "NAME=SOURCE" in wrong.stderr
    bad_mqtt = subprocess.run(
        agent_cmd("config", "init", "--storage", "x", "--mqtt", "ftp://x"), capture_output=True, text=True
    )
    assert bad_mqtt.returncode == 1 and "mqtt.url" in bad_mqtt.stderr


def test_log_lines_never_carry_passwords(caplog: pytest.LogCaptureFixture) -> None:
    from edge_agent.capture.kinds import mask_secrets

    assert mask_secrets("rtsp://admin:hunter2@10.0.0.1:554/s") == "rtsp://admin:***@10.0.0.1:554/s"
    assert "hunter2" not in mask_secrets("rtsp://h/user=admin&password=hunter2&channel=1&stream=0.sdp")
    caplog.set_level(logging.INFO)


def test_zones_replace_and_arming_ranges_are_checked() -> None:
    config = parse_config(
        """
defaults:
  detect:
    zones: {door: {polygon: [[0, 0], [1, 0], [1, 1]]}}
    motion: {threshold: 30}
cameras:
  a: {source: rtsp://h/a}
  b: {source: rtsp://h/b, detect: {zones: {gate: {polygon: [[0, 0], [0.5, 0], [0.5, 1]]}}, motion: {min_area: 0.01}}}
"""
    )
    assert set(config.cameras["a"].detect.zones) == {"door"}
    assert set(config.cameras["b"].detect.zones) == {"gate"}  # replaced, not merged with the default
    assert config.cameras["b"].detect.motion.threshold == 30  # other nested keys still merge
    assert config.cameras["b"].detect.motion.min_area == 0.01
    for bad in ("24:59", "22:00-24:30", "25:00-06:00", "22:00-22:00"):
        with pytest.raises(ConfigError, match=r"cameras\.a\.detect\.armed"):
            parse_config(f"cameras:\n  a: {{source: rtsp://h/a, detect: {{armed: ['{bad}']}}}}\n")
    parse_config("cameras:\n  a: {source: rtsp://h/a, detect: {armed: ['22:00-24:00', '00:00-06:00']}}\n")
