"""`diaolou-hub cards ...`: card administration from the hub box's shell, the same service
(hub/services/cards.py) the dorm manager's pages call, audited as the CLI."""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from common.clikit import CommandError, Commands
from common.residents_csv import MAX_FILE_BYTES, ResidentsCsvError
from hub.commands import cli_connection
from hub.config import load_hub_config
from hub.services import access_groups, audit, cards

if TYPE_CHECKING:
    from common.clikit import SubParsers


def cmd_cards_import(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    path = Path(args.file)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CommandError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    conn = cli_connection(config)
    try:
        report = cards.import_csv(conn, audit.CLI, None, data, str(path), config.web.time_zone)
    except (ResidentsCsvError, cards.CardError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        conn.close()
    print(json.dumps({"imported": str(path), "residents": report.residents, "cards": report.cards}))
    return 0


def cmd_cards_revoke(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    conn = cli_connection(config)
    try:
        revoked = cards.revoke_number(conn, audit.CLI, args.card)
    except cards.CardError as exc:
        raise CommandError(str(exc)) from None
    finally:
        conn.close()
    print(json.dumps({"revoked": [c.number for c in revoked]}))
    return 0


def cmd_cards_door(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    conn = cli_connection(config)
    try:
        cards.set_door(conn, audit.CLI, args.site, args.device, args.door, args.building, args.camera)
    except cards.CardError as exc:
        raise CommandError(str(exc)) from None
    finally:
        conn.close()
    watched = f", watched by camera {args.camera}" if args.camera else ""
    print(f"door {args.site}/{args.device}/{args.door} opens building {args.building}{watched}")
    return 0


def _access_change(args: argparse.Namespace, change: Callable[[sqlite3.Connection], None], done: str) -> int:
    config = load_hub_config(args.config)
    conn = cli_connection(config)
    try:
        change(conn)
    except cards.CardError as exc:
        raise CommandError(str(exc)) from None
    finally:
        conn.close()
    print(done)
    return 0


def cmd_cards_schedule(args: argparse.Namespace) -> int:
    return _access_change(
        args,
        lambda c: access_groups.set_schedule(c, audit.CLI, args.name, args.segment, not args.open_on_holidays),
        f"schedule {args.name}: {', '.join(args.segment)}",
    )


def cmd_cards_group(args: argparse.Namespace) -> int:
    return _access_change(
        args,
        lambda c: access_groups.set_group(c, audit.CLI, args.name, args.building, args.schedule),
        f"group {args.name} grants {', '.join(args.building)} ({args.schedule or 'at any time'})",
    )


def cmd_cards_member(args: argparse.Namespace) -> int:
    return _access_change(
        args,
        lambda c: access_groups.set_member(c, audit.CLI, args.employee, args.group, not args.remove),
        f"{args.employee} {'left' if args.remove else 'joined'} group {args.group}",
    )


def cmd_cards_holiday(args: argparse.Namespace) -> int:
    return _access_change(
        args,
        lambda c: access_groups.set_holiday(c, audit.CLI, args.day, args.name, not args.remove),
        f"{args.day} {'is no longer' if args.remove else 'is'} a holiday",
    )


def register_cards_commands(command: Commands, sub: SubParsers) -> None:
    group = sub.add_parser("cards", help="Access cards: residents, cards, gate doors.")
    group_sub = group.add_subparsers(dest="cards_command", required=True)
    p = command(
        "import", cmd_cards_import, "Add or update residents and cards from a CSV (all rows or none).", group_sub
    )
    p.add_argument("--config", required=True)
    p.add_argument("file", help="CSV: employee_no,name,company,building,room,phone,card_number,card_format,...")
    p = command("revoke", cmd_cards_revoke, "Revoke a card at once (every gate of its building).", group_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--card", required=True, help="The card as written in the CSV: FACILITY/NUMBER or the digits.")
    p = command("door", cmd_cards_door, "Bind a gate box's door to the building it opens.", group_sub)
    p.add_argument("--config", required=True)
    for name in ("site", "device", "door", "building"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument(
        "--camera",
        help="The box's camera at the door (its `camera` in agent.yaml): the building's dorm managers may watch it.",
    )
    p = command("schedule", cmd_cards_schedule, "Add or change a weekly schedule for groups.", group_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--segment", action="append", required=True, help="DAY[-DAY] HH:MM-HH:MM, e.g. mon-fri 07:00-22:00")
    p.add_argument("--open-on-holidays", action="store_true", help="Open on holidays too (default: closed).")
    p = command("group", cmd_cards_group, "Add or change a group granting buildings (on a schedule).", group_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--building", action="append", required=True, help="A building it grants; repeat.")
    p.add_argument("--schedule", help="When (a schedule's name); default: at any time.")
    p = command("member", cmd_cards_member, "Put a resident in a group (or --remove them).", group_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--employee", required=True, help="The resident's employee number.")
    p.add_argument("--group", required=True)
    p.add_argument("--remove", action="store_true")
    p = command("holiday", cmd_cards_holiday, "Add (or --remove) a holiday of the gates' calendar.", group_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--day", required=True, help="YYYY-MM-DD, site time.")
    p.add_argument("--name", default="", help="What the day is, e.g. 国庆节.")
    p.add_argument("--remove", action="store_true")
    p = command(
        "public-key",
        cmd_cards_public_key,
        "The hub's allow-list public key (base64): set it as `hub.list_key` in each gate box's config.",
        group_sub,
    )
    p.add_argument("--config", required=True)


def cmd_cards_public_key(args: argparse.Namespace) -> int:
    from hub.access_sync import list_public_key

    config = load_hub_config(args.config)
    try:
        print(list_public_key(config.data_dir))
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read or make the allow-list key in {config.data_dir}: {exc}") from None
    return 0
