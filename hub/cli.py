"""`diaolou-hub`: run ingest (and the embedded broker), create and check configs, list what was stored.

Every command that takes --config validates it first and exits with status 2 and the error
(file, key path, what is wrong) when it is broken; other failures exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sqlite3
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import ValidationError

from common.clikit import CommandError, Commands, root_parser, run
from hub import __version__
from hub.commands.cards import register_cards_commands
from hub.commands.doors import register_doors_commands
from hub.commands.evidence import register_evidence_commands
from hub.commands.incidents import register_incident_commands
from hub.commands.people import register_people_commands
from hub.config import ConfigError, HubConfig, format_validation_error, load_hub_config, render_hub_config
from hub.migrations import SchemaTooNew

log = logging.getLogger("diaolou.hub")


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    try:
        return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):
        # A row stored before the contract bounded times: show the number, never stop the listing.
        return f"{t!r} (not a date)"


def _time(text: str) -> float:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r} (e.g. 2026-11-28T02:13:00Z)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # times on the wire and in the database are UTC
    return value.timestamp()


def _open_db(config: HubConfig) -> Any:
    from hub.db import HubDB

    try:
        return HubDB(config.db_path, config.ingest.sqlite_synchronous, create=False)
    except (FileNotFoundError, SchemaTooNew) as exc:
        raise CommandError(str(exc)) from None
    except (OSError, sqlite3.DatabaseError) as exc:
        raise CommandError(f"cannot open the hub database {config.db_path}: {exc}") from None


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


# --- commands ---------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from hub.server import HubServer, HubStartError

    config = load_hub_config(args.config)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = HubServer(config, quiet_broker=args.log_level != "DEBUG")
    try:
        server.start()
    except HubStartError as exc:
        raise CommandError(str(exc)) from None
    try:
        stop.wait(args.seconds)
    finally:
        server.stop()
    return 0


def cmd_config_init(args: argparse.Namespace) -> int:
    if not args.mqtt and not args.embedded_broker:
        raise CommandError("--mqtt URL is required (or --embedded-broker for the one-box default)")
    try:
        text = render_hub_config(Path(args.data), args.mqtt, args.listen, args.embedded_broker)
    except ValidationError as exc:
        raise CommandError(format_validation_error(exc, "config init")) from None
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    print(text, end="")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_hub_config(args.file)
    broker = "embedded broker" if config.embedded_broker.enabled else "external broker"
    print(f"{args.file}: OK (data {config.data_dir}, {broker}, MQTT {config.mqtt.protocol})")
    return 0


def cmd_events_list(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    db = _open_db(config)
    try:
        rows = db.events(site=args.site, device=args.device, since=args.since, limit=args.limit)
    finally:
        db.close()
    out = [
        {
            "id": r["id"],
            "site": r["site"],
            "device": r["device"],
            "camera": r["camera"],
            "kind": r["kind"],
            "phase": r["phase"],
            "seq": r["seq"],
            "time": iso(r["time"]),
            "end": iso(r["end"]),
            "test": r["test"],
            "received": iso(r["received"]),
        }
        for r in rows
    ]
    if args.json:
        for row in out:
            print(json.dumps(row, ensure_ascii=False))
    else:
        _table(out, ["time", "site", "device", "camera", "kind", "phase", "seq", "test", "id"])
    return 0


def cmd_devices_list(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    db = _open_db(config)
    try:
        rows = db.devices()
    finally:
        db.close()
    out = [
        {
            "site": r["site"],
            "device": r["device"],
            "state": r["state"],
            "clean": r["clean"],
            "last_seen": iso(r["last_seen"]),
            "agent_version": r["agent_version"],
            "cameras": r["cameras"],
            "last_heartbeat": r["last_heartbeat"],
        }
        for r in rows
    ]
    if args.json:
        for row in out:
            print(json.dumps(row, ensure_ascii=False))
    else:
        for row in out:
            row["cameras"] = ",".join(row["cameras"])
        _table(out, ["site", "device", "state", "clean", "last_seen", "agent_version", "cameras"])
    return 0


def cmd_rejections(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    db = _open_db(config)
    try:
        rows = db.rejections()
    finally:
        db.close()
    for r in rows:
        r["first_seen"], r["last_seen"] = iso(r["first_seen"]), iso(r["last_seen"])
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    else:
        _table(rows, ["site", "device", "cause", "count", "last_seen", "last_error"])
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    db = _open_db(config)
    try:
        rows = db.dead_letters(limit=args.limit)
    finally:
        db.close()
    for r in rows:
        r["received"], r["set_aside"] = iso(r["received"]), iso(r["set_aside"])
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    else:
        _table(rows, ["set_aside", "site", "device", "kind", "error", "message"])
    return 0


# --- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser, sub = root_parser("diaolou-hub", "Diaolou hub", __version__)
    command = Commands(sub)

    p = command(
        "run",
        cmd_run,
        "Ingest MQTT messages into the database until SIGTERM/SIGINT (starts the embedded broker first if enabled).",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--seconds", type=float, default=None, help="Stop after this many seconds (tests, demos).")

    config = sub.add_parser("config", help="Create or check a config file.")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    p = command("init", cmd_config_init, "Print a complete, commented hub config.", config_sub)
    p.add_argument("--data", required=True, help="Hub data directory (hub.db).")
    p.add_argument("--mqtt", help="Broker URL: mqtt://[user:password@]host:port or mqtts://...")
    p.add_argument("--listen", help="HOST:PORT for the web UI (default 127.0.0.1:8080).")
    p.add_argument(
        "--embedded-broker",
        action="store_true",
        help="Run the embedded MQTT 3.1.1 broker (amqtt) in the hub; --mqtt then says where it listens.",
    )
    p = command("check", cmd_config_check, "Validate a config file; exit 2 with the error if it is broken.", config_sub)
    p.add_argument("file")

    events = sub.add_parser("events", help="Stored events.")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    p = command("list", cmd_events_list, "List stored events in arrival order.", events_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--site")
    p.add_argument("--device")
    p.add_argument("--since", type=_time, help="Only events that started at or after this ISO-8601 time (UTC).")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true", help="One JSON object per line.")

    devices = sub.add_parser("devices", help="Known devices.")
    devices_sub = devices.add_subparsers(dest="devices_command", required=True)
    p = command(
        "list", cmd_devices_list, "Devices with state (online/offline), last seen and last heartbeat.", devices_sub
    )
    p.add_argument("--config", required=True)
    p.add_argument("--json", action="store_true", help="One JSON object per line.")

    # Listed for --help; main() hands everything after `provision` to hub.provision's own parser.
    sub.add_parser(
        "provision",
        help="Mosquitto accounts: `provision device SITE DEVICE --broker URL`, `provision hub`, `provision remove`.",
    )

    p = command("rejections", cmd_rejections, "Rejected messages counted per site, device and cause.")
    p.add_argument("--config", required=True)
    p.add_argument("--json", action="store_true", help="One JSON object per line.")

    p = command(
        "dead-letters",
        cmd_dead_letters,
        "Messages that passed the contract but that the database refused, set aside with the reason (newest first).",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--limit", type=int, default=100, help="At most this many (default 100).")
    p.add_argument("--json", action="store_true", help="One JSON object per line.")
    register_people_commands(command, sub)
    register_evidence_commands(command, sub, devices_sub)
    register_incident_commands(command, sub)
    register_cards_commands(command, sub)
    register_doors_commands(command, sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["provision"]:
        from hub.provision import main as provision_main

        return provision_main(words[1:])
    return run(build_parser(), words)


if __name__ == "__main__":
    sys.exit(main())
