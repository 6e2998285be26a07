"""The hub's configuration: model, loader and the `diaolou-hub config init` template.

Same rules as the agent's config (edge_agent/config): every field has bounds and a description
(the description is the comment `config init` writes), unknown keys are rejected everywhere, and
errors name the file and the key path, e.g. `hub.yaml: mqtt.session_expiry_seconds: ...`.
It shares the agent's config plumbing (common.configfile: YAML, ${ENV} expansion, error messages, `config init`
rendering), which loads no video or ML library: a hub box needs none.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from common.configfile import ConfigError as ConfigError  # re-exported: one error type for every config
from common.configfile import format_validation_error as _format
from common.configfile import read_config_text, read_mapping
from common.configtext import field_lines
from contract import MAX_PAYLOAD_BYTES
from contract.broker import URL_PATTERN, check_broker_url, parse_broker_url
from hub.models import Priority

# The agent's MqttConfig accepts exactly this shape; the hub takes the same URLs.
_LISTEN = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
# An MQTT client id must not contain topic wildcards and should stay printable (it shows in broker logs).
_CLIENT_ID = r"^[A-Za-z0-9._:-]{1,128}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(Strict):
    """The hub's link to the broker: a persistent session that keeps messages while the hub is down."""

    url: str = Field(
        "mqtt://127.0.0.1:1883",
        description="Broker URL: mqtt://[user:password@]host:port, or mqtts:// for TLS. ${ENV_VAR} works here.",
    )
    protocol: Literal["v5", "v311"] = Field(
        "v5",
        description="MQTT version. v5 for Mosquitto (production); v311 for the embedded broker (amqtt speaks "
        "only 3.1.1).",
    )
    client_id: str = Field(
        "diaolou-hub",
        pattern=_CLIENT_ID,
        description="The hub's MQTT client id. It names the persistent session at the broker, so it must stay "
        "the same across restarts and be used by one hub process only.",
    )
    ca_file: Path | None = Field(None, description="CA certificate for mqtts:// (default: the system's CAs).")
    session_expiry_seconds: int = Field(
        7 * 86400,
        ge=60,
        le=2**32 - 1,
        description="v5: how long the broker keeps the hub's session (subscriptions and queued QoS 1 messages) "
        "while the hub is down. v311 sessions never expire by protocol; the broker decides "
        "(Mosquitto: persistent_client_expiration).",
    )
    keepalive_seconds: int = Field(30, ge=5, le=600, description="MQTT keepalive.")
    reconnect_max_seconds: int = Field(
        30, ge=1, le=3600, description="Cap of the exponential backoff between reconnect attempts."
    )
    receive_maximum: int = Field(
        1000,
        ge=1,
        le=65535,
        description="v5: QoS 1 messages the broker may have in flight to the hub at once. The hub acknowledges "
        "a message only after it is committed to SQLite, so this also bounds how much one commit can "
        "batch. (For v311 clients the broker's own limit applies, e.g. Mosquitto's max_inflight_messages.)",
    )

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        return check_broker_url(value)


class EmbeddedBrokerConfig(Strict):
    """The one-box broker inside the hub process (amqtt, MQTT 3.1.1); production runs Mosquitto instead."""

    enabled: bool = Field(
        False,
        description="Run an MQTT broker (amqtt, MQTT 3.1.1 only) inside the hub process: one box, one command. "
        "Production uses Mosquitto (persistence, ACLs per device, TLS) and leaves this off.",
    )
    host: str = Field("127.0.0.1", description="Address the embedded broker listens on (0.0.0.0 = every interface).")
    port: int = Field(1883, ge=1, le=65535, description="Port the embedded broker listens on.")
    anonymous: Literal["loopback", "any", "never"] = Field(
        "loopback",
        description="Who may connect without a password: clients on this machine only (loopback), anyone "
        "(any; a trusted LAN at most), or nobody (never: every client needs an entry in password_file).",
    )
    password_file: Path | None = Field(
        None,
        description="Password file for clients that log in: user:hash lines, argon2 hashes (hub.broker.hash_password).",
    )


class IngestConfig(Strict):
    """How received messages are batched into SQLite commits and acknowledged after them."""

    batch_max_messages: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Most messages committed in one SQLite transaction (the acknowledgements to the broker "
        "follow the commit).",
    )
    batch_max_delay_ms: float = Field(
        50.0,
        ge=0,
        le=5000,
        description="Longest a received event, status or reply waits for its batch to be committed. Under a "
        "steady stream a batch is committed as soon as no further message arrives for a millisecond, so quiet "
        "times see lower latency.",
    )
    heartbeat_batch_ms: float = Field(
        1000.0,
        ge=0,
        le=10_000,
        description="A batch of heartbeats alone (QoS 0: no box waits for their acknowledgement) stays open this "
        "long, so the heartbeats of many boxes share one commit instead of one commit each. An event, status or "
        "reply arriving meanwhile closes the batch as batch_max_delay_ms says.",
    )
    queue_max_messages: int = Field(
        2000,
        ge=1,
        le=1_000_000,
        description="Messages received but not yet committed (the batch being written included) at most. When "
        "this many are held, the hub stops reading from the broker until a commit makes room; the broker keeps "
        "the rest (nothing is dropped). At least batch_max_messages.",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="FULL: a committed (and acknowledged) message survives a power cut. NORMAL: survives a "
        "hub crash but not a power cut; fewer disk flushes.",
    )

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> IngestConfig:
        if self.queue_max_messages < self.batch_max_messages:
            raise ValueError(
                f"queue_max_messages ({self.queue_max_messages}) must be at least batch_max_messages "
                f"({self.batch_max_messages}): a batch is taken from the queue"
            )
        return self


class LimitsConfig(Strict):
    """Bounds on what one device can make the hub store or log."""

    max_payload_bytes: int = Field(
        MAX_PAYLOAD_BYTES,
        ge=1024,
        le=MAX_PAYLOAD_BYTES,
        description="Larger payloads are rejected (cause oversized) before they are parsed.",
    )
    rejection_log: Literal["once", "every", "off"] = Field(
        "once",
        description="Log a rejected message once per device and cause (once), for every message (every), or "
        "never (off). Every rejection is counted in the rejections table either way.",
    )
    max_rejection_keys: int = Field(
        10_000,
        ge=10,
        le=1_000_000,
        description="Distinct (site, device, cause) rejection counters kept; beyond this, rejections are "
        "counted under site and device '*' so a flood of invented names cannot grow the table without bound.",
    )
    max_dead_letters: int = Field(
        10_000,
        ge=10,
        le=1_000_000,
        description="Messages that passed the contract but that the database refused are set aside in the "
        "dead_letters table (see `diaolou-hub dead-letters`) so they never block other messages; the newest this "
        "many are kept.",
    )


class WebConfig(Strict):
    """The web UI and API: HTTPS, sessions, sign-in limits, phone notifications (docs/people.md)."""

    tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate (chain) to serve the web UI and API over HTTPS. Without it the hub serves "
        "plain HTTP: put it behind a TLS reverse proxy, or keep `listen` on loopback.",
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    secure_cookies: Literal["auto", "always"] = Field(
        "auto",
        description="Mark the session cookie Secure (sent over HTTPS only): auto = when tls_cert_file is set; "
        "always = also behind a TLS reverse proxy.",
    )
    session_days: float = Field(
        14, gt=0, le=365, description="Lifetime of a sign-in (its cookie and its bearer token)."
    )
    login_max_failures_per_account: int = Field(
        5,
        ge=1,
        le=100,
        description="Failed sign-ins for one account within login_window_minutes that lock it until an admin "
        "unlocks it (`diaolou-hub users unlock`).",
    )
    login_max_failures_per_address: int = Field(
        20,
        ge=1,
        le=10_000,
        description="Failed sign-ins from one address within login_window_minutes after which that address is "
        "refused (HTTP 429) until the window has passed.",
    )
    login_window_minutes: float = Field(15, gt=0, le=1440, description="The window the two limits above count in.")
    public_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        max_length=200,
        description="The hub's address as a phone reaches it, e.g. https://hub.lanxi.example.cn. Alert messages "
        "sent to WeCom or DingTalk link to <public_url>/alerts/<id>; without it they carry no link.",
    )
    time_zone: str = Field(
        "Asia/Shanghai",
        max_length=64,
        description="IANA time zone of the sites: new arming schedules start in it, and alert messages give "
        "their time in it unless the camera's schedule names another.",
    )
    gate_silent_seconds: float = Field(
        60.0,
        ge=5,
        le=86_400,
        description="The door board shows a gate box's doors offline once the hub has heard nothing from the box "
        "for this long (a box sends a heartbeat every `mqtt.heartbeat_seconds`, 10 s by default), even if "
        "its last will has not arrived yet.",
    )
    notification_hosts: list[str] = Field(
        ["qyapi.weixin.qq.com", "oapi.dingtalk.com"],
        max_length=50,
        description="Host names a notification webhook may point at (the WeCom and DingTalk robots by default; "
        "add a relay's host here). The hub posts nowhere else, so an account cannot make it call into the "
        "local network.",
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"unknown time zone {value!r}: an IANA name such as Asia/Shanghai") from None
        return value

    @field_validator("notification_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        for host in value:
            if not re.match(r"^[A-Za-z0-9.:-]{1,253}$", host):
                raise ValueError(f"{host!r} is not a host name or address")
        return [host.lower() for host in value]


# At most a year: a longer "deadline" is no deadline.
DeadlineHoursValue = Annotated[float, Field(gt=0, le=8760)]
CategoryCode = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
# Sane defaults: a person in a closed shop or a forced door wants someone there the same night; a
# tailgater is followed up with the dorm manager; an offline camera waits for a technician's round.
DEFAULT_CATEGORY_DEADLINES: dict[str, dict[Priority, float]] = {
    "intrusion": {"urgent": 1, "high": 4, "normal": 24, "low": 72},
    "forced_door": {"urgent": 1, "high": 4, "normal": 24, "low": 72},
    "tailgating": {"urgent": 2, "high": 8, "normal": 48, "low": 120},
    "camera_offline": {"urgent": 8, "high": 24, "normal": 72, "low": 168},
}


class DeadlineHours(Strict):
    """Hours from dispatch to resolution, per priority, for a category without a row of its own."""

    urgent: float = Field(2, gt=0, le=8760, description="Urgent incidents: hours from dispatch to resolution.")
    high: float = Field(12, gt=0, le=8760, description="High priority: hours from dispatch to resolution.")
    normal: float = Field(72, gt=0, le=8760, description="Normal priority: hours from dispatch to resolution.")
    low: float = Field(168, gt=0, le=8760, description="Low priority: hours from dispatch to resolution.")


# In the hub config rather than a table managed from the CLI (as triage rules are): deadlines are
# the centre's service-level policy, set at installation and changed rarely, checked at start-up
# with the rest and documented with it. A deadline is stamped on the incident at dispatch, so a
# change applies to incidents dispatched after the restart; figures already measured keep theirs.
class IncidentsConfig(Strict):
    """Deadlines, category x priority -> hours from dispatch to resolution; a change applies from the next dispatch."""

    deadline_hours: DeadlineHours = Field(
        default_factory=DeadlineHours, description="Deadlines of any category not in category_deadline_hours."
    )
    category_deadline_hours: dict[CategoryCode, dict[Priority, DeadlineHoursValue]] = Field(
        default_factory=lambda: {c: dict(row) for c, row in DEFAULT_CATEGORY_DEADLINES.items()},
        description="Per category (intrusion, forced_door, tailgating, camera_offline, public_report, ...): hours "
        "per priority (urgent, high, normal, low), each more than 0 and at most 8760. What you give overrides the "
        "default hour by hour; a category or priority neither names takes deadline_hours.",
    )

    @field_validator("category_deadline_hours")
    @classmethod
    def _over_the_defaults(cls, value: dict[str, dict[Priority, float]]) -> dict[str, dict[Priority, float]]:
        # An admin who shortens forced doors keeps the sane defaults of every other cell.
        merged = {c: dict(row) for c, row in DEFAULT_CATEGORY_DEADLINES.items()}
        for category, row in value.items():
            merged[category] = {**merged.get(category, {}), **row}
        return merged

    def hours(self, category: str, priority: Priority) -> float:
        """The deadline of an incident of this category and priority, in hours from dispatch."""
        row = self.category_deadline_hours.get(category, {})
        return row.get(priority) or float(getattr(self.deadline_hours, priority))


class HubConfig(Strict):
    """Top-level keys."""

    data_dir: Path = Field(
        Path("/var/lib/diaolou/hub"), description="Hub data directory: hub.db (SQLite, WAL) lives here."
    )
    listen: str = Field(
        "127.0.0.1:8080", description="HOST:PORT the hub's web UI listens on (used by the web UI, not by ingest)."
    )
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    embedded_broker: EmbeddedBrokerConfig = Field(default_factory=EmbeddedBrokerConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    incidents: IncidentsConfig = Field(default_factory=IncidentsConfig)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        match = _LISTEN.match(value)
        if not match or not 1 <= int(match.group(2)) <= 65535:
            raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080")
        return value

    @property
    def db_path(self) -> Path:
        return self.data_dir / "hub.db"


# --- loading ----------------------------------------------------------------------------------
def load_hub_config(path: str | Path) -> HubConfig:
    path = Path(path)
    return parse_hub_config(read_config_text(path), source=str(path), base_dir=path.resolve().parent)


def parse_hub_config(text: str, source: str = "<config>", base_dir: Path | None = None) -> HubConfig:
    """Validate config text. Relative paths are taken relative to `base_dir` (the config file's
    directory), so a config works from any working directory."""
    raw = read_mapping(text, source)
    try:
        config = HubConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    check_consistency(config, source)
    return config


def format_validation_error(exc: ValidationError, source: str) -> str:
    return _format(exc, source, "`diaolou-hub config init` prints every key")


def check_consistency(config: HubConfig, source: str) -> None:
    """Rules across sections; each error names the key to change."""
    broker = config.embedded_broker
    address = parse_broker_url(config.mqtt.url)
    web = config.web
    if (web.tls_cert_file is None) != (web.tls_key_file is None):
        raise ConfigError(f"{source}: web.tls_key_file: HTTPS needs both web.tls_cert_file and web.tls_key_file")
    if not broker.enabled:
        return
    if config.mqtt.protocol != "v311":
        raise ConfigError(f"{source}: mqtt.protocol: the embedded broker (amqtt) speaks only MQTT 3.1.1: use v311")
    if address.tls:
        raise ConfigError(f"{source}: mqtt.url: the embedded broker listens without TLS: use mqtt://, not mqtts://")
    if address.port != broker.port:
        raise ConfigError(
            f"{source}: mqtt.url: port {address.port} is not the embedded broker's port {broker.port} "
            "(embedded_broker.port); the hub would not reach its own broker"
        )
    if broker.anonymous == "never" and broker.password_file is None:
        raise ConfigError(
            f"{source}: embedded_broker.password_file: with anonymous: never every client needs a password file"
        )


def _resolve_paths(config: HubConfig, base: Path) -> HubConfig:
    def absolute(path: Path | None) -> Path | None:
        return path if path is None or path.is_absolute() else base / path

    mqtt = config.mqtt.model_copy(update={"ca_file": absolute(config.mqtt.ca_file)})
    broker = config.embedded_broker.model_copy(update={"password_file": absolute(config.embedded_broker.password_file)})
    web = config.web.model_copy(
        update={"tls_cert_file": absolute(config.web.tls_cert_file), "tls_key_file": absolute(config.web.tls_key_file)}
    )
    return config.model_copy(
        update={"data_dir": absolute(config.data_dir), "mqtt": mqtt, "embedded_broker": broker, "web": web}
    )


# --- `config init` ----------------------------------------------------------------------------
def render_hub_config(
    data_dir: Path,
    mqtt: str | None = None,
    listen: str | None = None,
    embedded_broker: bool = False,
) -> str:
    """A complete, commented hub config with every default spelled out. Raises ValidationError
    (key path) or ConfigError when the arguments do not make a valid config."""
    raw: dict[str, Any] = {"data_dir": str(data_dir), "mqtt": {}}
    if listen is not None:
        raw["listen"] = listen
    if mqtt is not None:
        raw["mqtt"]["url"] = mqtt
    if embedded_broker:
        url = mqtt or MqttConfig.model_fields["url"].default
        raw["mqtt"]["protocol"] = "v311"
        if URL_PATTERN.match(url):  # else validation below names mqtt.url
            address = parse_broker_url(url)
            # The broker binds where the hub connects; edit host to 0.0.0.0 for agents on other boxes.
            host = "127.0.0.1" if address.host == "localhost" else address.host
            raw["embedded_broker"] = {"enabled": True, "host": host, "port": address.port}
    config = HubConfig.model_validate(raw)
    check_consistency(config, "config init")
    out = [
        "# Diaolou hub configuration (generated by `diaolou-hub config init`).",
        "# Check it with `diaolou-hub config check FILE`. Relative paths are relative to this file.",
        "# Any string may use ${ENV_VAR} to read a value (e.g. the broker password) from the environment.",
        "",
    ]
    for name, info in HubConfig.model_fields.items():
        out.extend(field_lines(name, info, getattr(config, name), 0))
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
