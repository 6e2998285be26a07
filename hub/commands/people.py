"""`diaolou-hub users ...` and `diaolou-hub audit ...`: the account and audit services with a
command-line front. Passwords never travel on the command line (it shows in `ps` and in shell
history): a password file, or a prompt on a terminal.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from common.clikit import CommandError, Commands
from hub.commands import cli_connection
from hub.config import load_hub_config
from hub.models import ROLES
from hub.services import accounts, audit

if TYPE_CHECKING:
    from common.clikit import SubParsers


def read_password(path: str | None, confirm: bool = True) -> str:
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read the password file {path}: {exc}") from None
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise CommandError(f"the password file {path} is empty: put the password on its first line")
        return lines[0]
    if not sys.stdin.isatty():
        raise CommandError("give --password-file FILE (no terminal to prompt for a password on)")
    first = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != first:
        raise CommandError("the two passwords differ")
    return first


def cmd_users_add(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    password = read_password(args.password_file)
    conn = cli_connection(config)
    try:
        user = accounts.add_user(
            conn,
            audit.CLI,
            args.username,
            password,
            args.role,
            args.camera or [],
            args.site or [],
            args.locale,
            args.building or [],
        )
    except accounts.AccountError as exc:
        raise CommandError(str(exc)) from None
    finally:
        conn.close()
    scope = ", ".join(user.cameras or user.sites or user.buildings)
    print(f"added {user.username} ({user.role}{': ' + scope if scope else ''})")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    conn = cli_connection(config)
    try:
        users = accounts.list_users(conn)
    finally:
        conn.close()
    for user in users:
        if args.json:
            print(user.model_dump_json())
        else:
            scope = ",".join(user.cameras or user.sites or user.buildings or user.grids) or "-"
            print(f"{user.username:20} {user.role:12} {'locked' if user.locked else 'active':7} {scope}")
    if not users and not args.json:
        print("(none)")
    return 0


def cmd_users_remove(args: argparse.Namespace) -> int:
    return _run_account_change(args, lambda conn: accounts.remove_user(conn, audit.CLI, args.username), "removed")


def cmd_users_unlock(args: argparse.Namespace) -> int:
    return _run_account_change(args, lambda conn: accounts.unlock(conn, audit.CLI, args.username), "unlocked")


def cmd_users_set_password(args: argparse.Namespace) -> int:
    password = read_password(args.password_file)
    return _run_account_change(
        args,
        lambda conn: accounts.set_password(conn, audit.CLI, args.username, password),
        "set a new password for (and signed out everywhere)",
    )


def _run_account_change(args: argparse.Namespace, change: Callable[[sqlite3.Connection], None], done: str) -> int:
    config = load_hub_config(args.config)
    conn = cli_connection(config)
    try:
        change(conn)
    except accounts.AccountError as exc:
        raise CommandError(str(exc)) from None
    finally:
        conn.close()
    print(f"{done} {args.username}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    conn = cli_connection(config)
    try:
        result = audit.verify(conn)
    finally:
        conn.close()
    if args.json:
        print(json.dumps({"rows": result.rows, "first_bad": result.first_bad, "problem": result.problem}))
    elif result.first_bad is None:
        print(f"audit log intact: {result.rows} rows")
    else:
        print(f"audit log BROKEN at row {result.first_bad}: {result.problem}", file=sys.stderr)
    return 0 if result.first_bad is None else 1


def register_people_commands(command: Commands, sub: SubParsers) -> None:
    users = sub.add_parser("users", help="People's accounts and roles.")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    p = command("add", cmd_users_add, "Add a user with a role and what they may see.", users_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--password-file", help="File whose first line is the password (else a prompt).")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--camera", action="append", help="A shop owner's camera id (site.device.camera); repeat.")
    p.add_argument("--site", action="append", help="A police user's site; repeat.")
    p.add_argument("--building", action="append", help="A dorm manager's building; repeat.")
    p.add_argument("--locale", choices=["zh", "en"], default="zh", help="The web UI's language for this user.")
    p = command("list", cmd_users_list, "List users, roles and scopes.", users_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--json", action="store_true", help="One JSON object per line.")
    for name, func, text in (
        ("remove", cmd_users_remove, "Remove a user (their sessions and tokens go with them)."),
        ("unlock", cmd_users_unlock, "Lift a lock-out after repeated failed sign-ins."),
        ("set-password", cmd_users_set_password, "Set a new password; signs the user out everywhere."),
    ):
        p = command(name, func, text, users_sub)
        p.add_argument("--config", required=True)
        p.add_argument("--username", required=True)
        if name == "set-password":
            p.add_argument("--password-file", help="File whose first line is the password (else a prompt).")

    audit_parser = sub.add_parser("audit", help="The audit log.")
    audit_sub = audit_parser.add_subparsers(dest="audit_command", required=True)
    p = command(
        "verify", cmd_audit_verify, "Check the hash chain; exit 1 naming the first altered or removed row.", audit_sub
    )
    p.add_argument("--config", required=True)
    p.add_argument("--json", action="store_true")
