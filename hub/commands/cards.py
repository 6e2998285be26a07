"""`diaolou-hub cards ...`: card administration from the hub box's shell, the same service
(hub/services/cards.py) the dorm manager's pages call, audited as the CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from common.clikit import CommandError, Commands
from common.residents_csv import MAX_FILE_BYTES, ResidentsCsvError
from hub.commands import cli_connection
from hub.config import load_hub_config
from hub.services import audit, cards

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
        cards.set_door(conn, audit.CLI, args.site, args.device, args.door, args.building)
    except cards.CardError as exc:
        raise CommandError(str(exc)) from None
    finally:
        conn.close()
    print(f"door {args.site}/{args.device}/{args.door} opens building {args.building}")
    return 0


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
