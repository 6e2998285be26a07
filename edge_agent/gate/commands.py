"""`diaolou-agent decide` and `diaolou-agent gate import`: thin calls into `Gate`."""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from common.clikit import CommandError, Commands
from edge_agent.config import load_config
from edge_agent.gate.credential import CardReadError, parse_card
from edge_agent.gate.importer import GateImportError

if TYPE_CHECKING:
    from common.clikit import SubParsers
    from edge_agent.gate.service import Gate


def _open(args: argparse.Namespace, create: bool) -> Gate:
    from edge_agent.gate.service import Gate

    config = load_config(args.config)
    if not config.doors:
        raise CommandError(f"{args.config}: no gate door configured under `doors:`")
    try:
        return Gate(config, create=create)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None
    except (OSError, sqlite3.Error) as exc:
        raise CommandError(f"cannot open the allow-list in {config.storage.root}: {exc}") from None


def _at(text: str | None, timezone: str) -> float:
    """--at as epoch seconds: an ISO-8601 time; without a zone it is the site's local time (the
    installer asks about "22:15 last night" as the resident lived it)."""
    if text is None:
        return time.time()
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--at: not an ISO-8601 time: {text!r} (e.g. 2026-12-07T22:15)") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))).timestamp()


def cmd_decide(args: argparse.Namespace) -> int:
    try:
        card = parse_card(args.card)
    except CardReadError as exc:
        raise CommandError(f"--card: {exc}") from None
    gate = _open(args, create=False)
    try:
        decision = gate.decide(args.door, card, _at(args.at, gate.timezone))
    finally:
        gate.close()
    print(json.dumps(decision.as_dict(), ensure_ascii=False))
    return 0


def cmd_gate_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    gate = _open(args, create=True)
    try:
        result = gate.import_csv(path)
    except GateImportError as exc:
        raise CommandError(str(exc)) from None
    finally:
        gate.close()
    print(json.dumps({"imported": str(path), "holders": result.holders, "cards": result.credentials}))
    return 0


def add_commands(command: Commands, sub: SubParsers) -> None:
    p = command("decide", cmd_decide, "The decision a gate door would take for a card now (or --at), and why.")
    p.add_argument("--config", required=True)
    p.add_argument("--door", required=True)
    p.add_argument("--card", required=True, help="A card number, 26:BITS or 34:BITS (Wiegand), or FC/NUMBER.")
    p.add_argument("--at", help="ISO-8601 time; without a zone, the site's local time (default: now).")
    gate = sub.add_parser("gate", help="Gate doors: the local allow-list.")
    gate_sub = gate.add_subparsers(dest="gate_command", required=True)
    p = command("import", cmd_gate_import, "Add or update residents and cards from a CSV (all rows or none).", gate_sub)
    p.add_argument("--config", required=True)
    p.add_argument("file", help="CSV: " + "employee_no,name,company,building,room,phone,card_number,card_format,...")
