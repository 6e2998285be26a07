"""Provision Mosquitto accounts: one per device, one per hub process.

Writes the two files the production broker reads (firmware_configs/mosquitto/mosquitto.conf):

* the password file, in Mosquitto 2.0's own format (`user:$7$<iterations>$<salt>$<hash>`,
  PBKDF2-HMAC-SHA512), hashed here so provisioning needs no `mosquitto_passwd` on the machine;
* the ACL file, one explicit block per account. A device `<site>.<device>` may publish only its
  own status, heartbeat, event and reply topics and read only its own cmd/ topics; the hub reads
  everything under diaolou/v1/ and writes only commands.

Why explicit blocks and not `pattern ... %u` lines: a pattern needs the user name to be the topic
levels themselves (`<site>/<device>`; Mosquitto 2.0.11 does substitute a '/' in %u, tested), and
such a name must then be percent-encoded in every `mqtt://user:password@host` URL; a pattern also
grants its rights to every account whose name happens to have that shape, while an explicit
block is a readable list of exactly who may do what, which is what a police IT officer audits.
Device user names are `<site>.<device>`: '.' is outside the site/device alphabet, so the name is
unambiguous ('-' and '_' are not) and cannot collide with a hub account (no '.').

Both files are replaced atomically (temp file, fsync, rename) under a lock, keeping their mode and
owner, and lines this module does not own are kept as they were (accounts added with
mosquitto_passwd, hand-written ACL blocks). Mosquitto reads the files at start and on SIGHUP
(`systemctl reload mosquitto`); after a reload it disconnects clients whose account was removed
or whose password changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from common.durable import locked, write_atomic
from common.net import is_loopback
from contract.topics import NAME, ROOT, VERSION, TopicError, device_prefix, topic
from hub.security import MOSQUITTO_ITERATIONS, generate_password, mosquitto_hash, verify_mosquitto_hash

DEFAULT_ITERATIONS = MOSQUITTO_ITERATIONS
HUB_USERNAME = "hub"
# Where the agent keeps the broker's private CA (firmware_configs/mosquitto/make-certs.sh's ca.crt).
AGENT_CA_FILE = "/etc/diaolou/mqtt-ca.crt"
# A given password goes verbatim into mqtt://user:password@host URLs and into agent.env: only
# characters that need no escaping in either (RFC 3986 unreserved).
_PASSWORD = re.compile(r"^[A-Za-z0-9._~-]{16,128}$")
_NEW_FILE_MODE = 0o640  # owner root writes, group mosquitto reads (the broker runs as mosquitto)
_LOCK_NAME = ".diaolou-provision.lock"


class ProvisionError(ValueError):
    """Bad input or a file this module will not rewrite; the message is for the operator."""


@dataclass(frozen=True)
class ProvisionResult:
    """What was provisioned and what to give the agent (or hub). `password` is in clear text:
    print it once, do not log it."""

    kind: Literal["device", "hub"]
    username: str
    password: str
    url: str  # the broker URL with the credentials, as mqtt.url takes it
    replaced: bool  # the account existed: its old password stops working at the next reload
    config_snippet: str  # YAML to put in the agent's (or hub's) config
    env_snippet: str  # the same with the password in an environment file instead (${ENV})
    site: str | None = None
    device: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def text(self) -> str:
        """Everything the installer needs, ready to print."""
        who = f"device {self.site}/{self.device}" if self.kind == "device" else f"hub account {self.username!r}"
        action = "re-provisioned (new password; the old one stops working)" if self.replaced else "provisioned"
        lines = [f"# {who} {action}: MQTT user {self.username}", ""]
        lines += [self.config_snippet, "", self.env_snippet, ""]
        lines.append("# Then reload the broker so it reads the new account: sudo systemctl reload mosquitto")
        lines += [f"# WARNING: {w}" for w in self.warnings]
        return "\n".join(lines) + "\n"


# --- names ----------------------------------------------------------------------------------------
def device_username(site: str, device: str) -> str:
    _check_device(site, device)
    return f"{site}.{device}"


def _check_device(site: str, device: str) -> None:
    try:
        device_prefix(site, device)  # the contract's name rule, with its message
    except TopicError as exc:
        raise ProvisionError(str(exc)) from None


def _check_hub_username(username: str) -> None:
    if not NAME.match(username):
        raise ProvisionError(
            f"invalid hub user name {username!r}: lower-case letters, digits, - and _ only "
            "(no '.', which device accounts use)"
        )


# --- password hashes: hub.security ------------------------------------------------------------
hash_password = mosquitto_hash  # the names callers and tests have used
verify_password = verify_mosquitto_hash


def _check_password(password: str) -> None:
    if not _PASSWORD.match(password):
        raise ProvisionError(
            "a given password must be 16-128 characters of A-Z a-z 0-9 . _ ~ - (it goes verbatim into the "
            "agent's mqtt:// URL); leave it out to have a strong one generated"
        )


# --- password file --------------------------------------------------------------------------------
def read_password_file(path: Path) -> dict[str, str]:
    """user -> hash, as Mosquitto reads the file (first ':' separates; blank and # lines skipped)."""
    users: dict[str, str] = {}
    for line in _read_lines(path):
        if line.strip() and not line.lstrip().startswith("#"):
            user, _, entry = line.partition(":")
            users[user] = entry
    return users


def _set_password_line(lines: list[str], username: str, entry: str | None) -> tuple[list[str], bool]:
    """Replace the user's line in place (first one; later duplicates dropped), append it if new,
    or remove it when `entry` is None. Every other line is kept byte for byte."""
    out: list[str] = []
    found = False
    for line in lines:
        if line.partition(":")[0] == username and not line.lstrip().startswith("#"):
            if not found and entry is not None:
                out.append(f"{username}:{entry}")
            found = True
            continue
        out.append(line)
    if not found and entry is not None:
        out.append(f"{username}:{entry}")
    return out, found


# --- ACL file -------------------------------------------------------------------------------------
def device_acl(site: str, device: str) -> list[str]:
    """The device's ACL block: publish its own four topics and its snapshots, read its own commands.
    Nothing else."""
    _check_device(site, device)
    lines = [f"# device {site}/{device}", f"user {device_username(site, device)}"]
    lines += [f"topic write {topic(site, device, kind)}" for kind in ("status", "heartbeat", "event", "reply")]
    lines.append(f"topic write {device_prefix(site, device)}/snapshot/+")
    lines.append(f"topic read {device_prefix(site, device)}/cmd/#")
    lines.append(f"topic read {topic(site, device, 'acl')}")
    return lines


def hub_acl(username: str = HUB_USERNAME) -> list[str]:
    """The hub reads every device's messages and writes only commands. $SYS/broker/# is read so
    the hub can watch Mosquitto's counters (messages dropped because a queue was full)."""
    _check_hub_username(username)
    return [
        f"# hub account {username}",
        f"user {username}",
        f"topic read {ROOT}/{VERSION}/#",
        f"topic write {ROOT}/{VERSION}/+/+/cmd/#",
        f"topic write {ROOT}/{VERSION}/+/+/acl",
        "topic read $SYS/broker/#",
    ]


def read_acl_users(path: Path) -> dict[str, list[str]]:
    """user -> its rule lines (`topic ...`), as written in the ACL file."""
    _, blocks = _parse_acl(_read_lines(path))
    users: dict[str, list[str]] = {}
    for user, lines in blocks:
        users.setdefault(user, []).extend(x.strip() for x in lines if x.strip().startswith("topic "))
    return users


def _user_of(line: str) -> str | None:
    stripped = line.strip()
    return stripped[5:].strip() if stripped.startswith("user ") else None


def _parse_acl(lines: list[str]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Split into the preamble (before the first `user` line: anonymous rules, patterns, comments)
    and one block per `user` line. The comment lines right above a `user` line belong to its
    block, so removing a block takes its heading along."""
    preamble: list[str] = []
    blocks: list[tuple[str, list[str]]] = []
    current = preamble
    for line in lines:
        user = _user_of(line)
        if user is None:
            current.append(line)
            continue
        heading: list[str] = []
        while current and current[-1].lstrip().startswith("#"):
            heading.insert(0, current.pop())
        current = [*heading, line]
        blocks.append((user, current))
    return preamble, blocks


def _set_acl_block(lines: list[str], username: str, block: list[str] | None) -> tuple[list[str], bool]:
    """Replace the user's block in place (Mosquitto merges repeated `user` blocks, so every later
    one is dropped), append it if new, or remove it when `block` is None."""
    preamble, blocks = _parse_acl(lines)
    for user, body in blocks:
        if user == username and any(x.strip().startswith("pattern") for x in body):
            # Pattern lines apply to every user wherever they stand: removing the block would drop them.
            raise ProvisionError(
                f"the ACL block of {username!r} contains pattern lines; move them above the first user"
            )
    out = list(preamble)
    found = False
    for user, body in blocks:
        if user != username:
            out += body
            continue
        if not found and block is not None:
            out += [*block, ""]
        found = True
    if not found and block is not None:
        if out and out[-1].strip():
            out.append("")
        out += [*block, ""]
    while len(out) > 1 and not out[-1].strip() and not out[-2].strip():
        out.pop()  # removed blocks must not leave a growing run of blank lines
    return out, found


# --- files ----------------------------------------------------------------------------------------
def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _write_atomic(path: Path, lines: list[str]) -> None:
    """Replace `path` so Mosquitto (reading on SIGHUP) sees the old or the new file, never half of
    one. The mode and owner stay as they were; a new file gets 0640 and its directory's group
    (mosquitto reads it after dropping root)."""
    text = "\n".join(lines) + "\n" if lines else ""
    write_atomic(path, text, mode=None if path.exists() else _NEW_FILE_MODE, keep_owner=True)


def _set_account(
    password_file: Path, acl_file: Path, username: str, entry: str | None, acl: list[str] | None
) -> tuple[bool, bool]:
    """Add/replace (entry and acl given) or remove (both None) one account in both files; returns
    whether it had (a password line, an ACL block). The two renames are not one atomic step, and
    need not be: Mosquitto denies by default, so a login without its block has no rights and a
    block without a login is unusable. Adding writes the ACL first and removing drops the login
    first, so an interrupted run leaves the unusable half, and running it again completes it."""
    with locked(password_file.parent, _LOCK_NAME):
        pw_lines, pw_found = _set_password_line(_read_lines(password_file), username, entry)
        acl_lines, acl_found = _set_acl_block(_read_lines(acl_file), username, acl)
        if entry is None:
            if pw_found:
                _write_atomic(password_file, pw_lines)
            if acl_found:
                _write_atomic(acl_file, acl_lines)
        else:
            _write_atomic(acl_file, acl_lines)
            _write_atomic(password_file, pw_lines)
    return pw_found, acl_found


# --- broker URL -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Broker:
    scheme: str
    host: str
    port: int

    def url(self, user: str, password: str) -> str:
        return f"{self.scheme}://{user}:{password}@{self.host}:{self.port}"

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"


def _parse_broker_url(url: str) -> _Broker:
    """The broker as agents dial it: mqtts://host[:port] (or mqtt:// on a trusted network)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ProvisionError(f"broker URL {url!r}: expected mqtts://host:port (or mqtt://host:port)")
    if parts.username is not None or parts.password is not None:
        raise ProvisionError(f"broker URL {url!r}: give it without user and password; provisioning adds them")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProvisionError(f"broker URL {url!r}: host and port only")
    if ":" in parts.hostname:
        # The agent's mqtt.url takes host names and IPv4 addresses only (edge_agent.config.schema).
        raise ProvisionError(f"broker URL {url!r}: use a host name instead of an IPv6 address")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise ProvisionError(f"broker URL {url!r}: bad port") from None
    return _Broker(parts.scheme, parts.hostname, port)


def _plaintext_warning(broker: _Broker) -> tuple[str, ...]:
    if broker.tls or is_loopback(broker.host):
        return ()
    return (f"mqtt:// to {broker.host} sends the password unencrypted; use mqtts:// (port 8883) off this machine",)


# --- public operations ----------------------------------------------------------------------------
def provision_device(
    site: str,
    device: str,
    password_file: Path,
    acl_file: Path,
    broker_url: str,
    password: str | None = None,
    *,
    ca_file: str | None = AGENT_CA_FILE,
) -> ProvisionResult:
    """Create or replace the device's account and ACL block, and return its agent config.

    Re-provisioning an existing device gives it a new password (the old one stops working at the
    next reload: that is how a stolen box is locked out and a replacement box let in).
    `ca_file` is the agent-side path of the private CA for mqtts:// (None when the broker's
    certificate is from a public CA)."""
    username = device_username(site, device)
    broker = _parse_broker_url(broker_url)
    password = generate_password() if password is None else password
    _check_password(password)
    replaced, _ = _set_account(
        Path(password_file), Path(acl_file), username, hash_password(password), device_acl(site, device)
    )
    url = broker.url(username, password)
    env_url = broker.url(username, "${DIAOLOU_MQTT_PASSWORD}")
    ca_line = f"\n  ca_file: {ca_file}   # the broker's CA (make-certs.sh ca.crt)" if broker.tls and ca_file else ""
    config = (
        f"# agent config (/etc/diaolou/agent.yaml) for {site}/{device}\n"
        f'site: {site}\ndevice: {device}\nmqtt:\n  url: "{url}"{ca_line}'
    )
    env = (
        "# or, to keep the password out of agent.yaml: in /etc/diaolou/agent.env (mode 0600)\n"
        f"DIAOLOU_MQTT_PASSWORD={password}\n"
        f'# and in agent.yaml\nmqtt:\n  url: "{env_url}"{ca_line}'
    )
    return ProvisionResult(
        "device", username, password, url, replaced, config, env, site, device, _plaintext_warning(broker)
    )


def provision_hub(
    password_file: Path,
    acl_file: Path,
    broker_url: str = "mqtt://127.0.0.1:1883",
    password: str | None = None,
    *,
    username: str = HUB_USERNAME,
    ca_file: str | None = None,
) -> ProvisionResult:
    """Create or replace a hub account (reads all devices, writes commands). The broker lets an
    account hold one connection at a time (use_username_as_clientid), so a second hub process
    (a worker, a CLI that sends commands) needs its own `username`."""
    _check_hub_username(username)
    broker = _parse_broker_url(broker_url)
    password = generate_password() if password is None else password
    _check_password(password)
    replaced, _ = _set_account(
        Path(password_file), Path(acl_file), username, hash_password(password), hub_acl(username)
    )
    url = broker.url(username, password)
    ca_line = f"\n  ca_file: {ca_file}" if broker.tls and ca_file else ""
    config = f'# hub config (mqtt section)\nmqtt:\n  url: "{url}"{ca_line}'
    env = (
        "# or with the password in the hub's environment file\n"
        f"DIAOLOU_HUB_MQTT_PASSWORD={password}\n"
        f'mqtt:\n  url: "{broker.url(username, "${DIAOLOU_HUB_MQTT_PASSWORD}")}"{ca_line}'
    )
    return ProvisionResult("hub", username, password, url, replaced, config, env, warnings=_plaintext_warning(broker))


def remove_device(site: str, device: str, password_file: Path, acl_file: Path) -> bool:
    """Delete the device's account and ACL block; True if it was there. After the reload the
    broker disconnects the device if it is connected. Its last retained status stays on the broker
    (Mosquitto 2.0.11 keeps handing it out): clear it first (firmware_configs/mosquitto/README.md)."""
    return any(_set_account(Path(password_file), Path(acl_file), device_username(site, device), None, None))


def remove_hub(password_file: Path, acl_file: Path, username: str = HUB_USERNAME) -> bool:
    _check_hub_username(username)
    return any(_set_account(Path(password_file), Path(acl_file), username, None, None))


# --- command line (until `diaolou-hub` wraps these) --------------------------------------------------
DEFAULT_PASSWORD_FILE = Path("/etc/mosquitto/diaolou/passwd")
DEFAULT_ACL_FILE = Path("/etc/mosquitto/diaolou/acl")


def main(argv: list[str] | None = None) -> int:
    """`diaolou-hub provision device|hub|remove ...`; prints the config snippet (with the
    password: it is shown once and stored only as a hash)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="diaolou-hub provision", description="Mosquitto accounts for Diaolou.")
    parser.add_argument("--password-file", type=Path, default=DEFAULT_PASSWORD_FILE)
    parser.add_argument("--acl-file", type=Path, default=DEFAULT_ACL_FILE)
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("device", help="add a device, or give an existing one a new password")
    dev.add_argument("site")
    dev.add_argument("device")
    dev.add_argument("--broker", required=True, help="as the agent dials it, e.g. mqtts://hub.example.cn:8883")
    dev.add_argument("--ca-file", default=AGENT_CA_FILE, help="the CA's path on the agent ('' for a public CA)")
    hub = sub.add_parser("hub", help="add the hub account, or give it a new password")
    hub.add_argument("--username", default=HUB_USERNAME)
    hub.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="as the hub dials it")
    hub.add_argument("--ca-file", default=None, help="the CA's path on the hub, for mqtts://")
    rm = sub.add_parser("remove", help="remove a device's account")
    rm.add_argument("site")
    rm.add_argument("device")
    args = parser.parse_args(argv)
    try:
        if args.command == "device":
            result = provision_device(
                args.site, args.device, args.password_file, args.acl_file, args.broker, ca_file=args.ca_file or None
            )
        elif args.command == "hub":
            result = provision_hub(
                args.password_file, args.acl_file, args.broker, username=args.username, ca_file=args.ca_file
            )
        else:
            if not remove_device(args.site, args.device, args.password_file, args.acl_file):
                print(f"{args.site}/{args.device} is not provisioned", file=sys.stderr)
                return 1
            print(f"removed {args.site}/{args.device}; now: sudo systemctl reload mosquitto")
            return 0
    except (ProvisionError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(result.text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
