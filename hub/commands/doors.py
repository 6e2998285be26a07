"""`diaolou-hub doors ...`: the door board from the hub box's shell, the same service
(hub/services/door_board.py) the dorm manager's page calls: every door's state, the alarms and
the stale gate boxes as JSON, and acknowledging an alarm (audited as the CLI)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pydantic import ValidationError

from common.clikit import CommandError, Commands
from hub.commands import cli_connection
from hub.config import load_hub_config
from hub.services import audit, door_board

if TYPE_CHECKING:
    from common.clikit import SubParsers


def cmd_doors_board(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    conn = cli_connection(config)
    try:
        board = door_board.board(conn, None, config.web.gate_silent_seconds)
    finally:
        conn.close()
    print(board.model_dump_json(indent=2 if args.pretty else None))
    return 0


def cmd_doors_ack(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    try:
        body = door_board.AlarmAckRequest(note=args.note)  # the API's limits, not a second set
    except ValidationError as exc:
        raise CommandError(f"--note: {exc.errors()[0]['msg']}") from None
    conn = cli_connection(config)
    try:
        acked = door_board.acknowledge(conn, audit.CLI, None, args.alarm, body.note)
    except door_board.AckRefused as exc:
        raise CommandError(str(exc)) from None
    finally:
        conn.close()
    if acked is None:
        raise CommandError(f"no door alarm {args.alarm!r} (see `diaolou-hub doors board` for the alarms' ids)")
    print(acked.model_dump_json())
    return 0


def register_doors_commands(command: Commands, sub: SubParsers) -> None:
    group = sub.add_parser("doors", help="The door board: door states, door alarms, stale gate boxes.")
    group_sub = group.add_subparsers(dest="doors_command", required=True)
    p = command("board", cmd_doors_board, "Every door's state, the open alarms and the gate boxes (JSON).", group_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--pretty", action="store_true", help="Indent the JSON.")
    p = command("ack", cmd_doors_ack, "Acknowledge a door alarm, with a note (audited).", group_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--alarm", required=True, help="The alarm's id (from `doors board`).")
    p.add_argument("--note", default="", help="What was found or done.")
