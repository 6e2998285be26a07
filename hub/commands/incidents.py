"""`diaolou-hub grids ...` and `diaolou-hub incidents ...`: the grid and incident services with a
command-line front, for the grid centre's IT officer."""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from common.clikit import CommandError, Commands
from hub.commands import cli_connection
from hub.config import load_hub_config
from hub.services import audit, grids, incidents, open311, triage, webhooks

if TYPE_CHECKING:
    from common.clikit import SubParsers

T = TypeVar("T")


def _with_db(args: argparse.Namespace, work: Callable[[sqlite3.Connection], T]) -> T:
    conn = cli_connection(load_hub_config(args.config))
    try:
        return work(conn)
    except (grids.GridError, incidents.IncidentError) as exc:
        raise CommandError(str(exc)) from None
    finally:
        conn.close()


def cmd_grids_import(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {args.file}: {exc}") from None
    try:
        parsed = grids.parse_geojson(text)
    except grids.GridError as exc:
        raise CommandError(f"{args.file}: {exc}") from None
    count = _with_db(args, lambda conn: grids.import_grids(conn, audit.CLI, parsed))
    print(f"imported {count} grids from {args.file}")
    return 0


def cmd_grids_list(args: argparse.Namespace) -> int:
    for code, name, civil in _with_db(args, grids.list_grids):
        print(f"{code:16} {civil:14} {name}")
    return 0


def cmd_grids_place(args: argparse.Namespace) -> int:
    if args.grid is None and (args.lon is None or args.lat is None):
        raise CommandError("give --grid G, or --lon and --lat")
    found = _with_db(
        args, lambda conn: grids.place(conn, audit.CLI, args.ref, lon=args.lon, lat=args.lat, grid=args.grid)
    )
    print(f"{args.ref} -> {found or '(outside every grid)'}")
    return 0


def cmd_grids_assign(args: argparse.Namespace) -> int:
    _with_db(args, lambda conn: grids.assign_worker(conn, audit.CLI, args.username, args.grid, args.remove))
    print(f"{'removed' if args.remove else 'assigned'} {args.username} {'from' if args.remove else 'to'} {args.grid}")
    return 0


def _iso(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%MZ")


def cmd_incidents_list(args: argparse.Namespace) -> int:
    items = _with_db(
        args,
        lambda conn: incidents.list_incidents(conn, None, args.status, args.grid, args.limit, overdue=args.overdue),
    )
    for item in items:
        if args.json:
            print(item.model_dump_json())
        else:
            flag = " OVERDUE" if item.overdue else ""
            print(
                f"{item.id:6} {item.status:11} {item.grid or '-':12} {item.category:16} {_iso(item.created)} "
                f"alerts={len(item.alerts)} {item.title}{flag}"
            )
    if not items and not args.json:
        print("(none)")
    return 0


def cmd_triage_load(args: argparse.Namespace) -> int:
    try:
        rules = triage.load_rules_file(Path(args.file))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    _with_db(args, lambda conn: triage.set_rules(conn, audit.CLI, rules))
    print(f"loaded {len(rules)} triage rules from {args.file}")
    return 0


def cmd_triage_list(args: argparse.Namespace) -> int:
    for rule in _with_db(args, triage.get_rules):
        print(rule.model_dump_json())
    return 0


def register_incident_commands(command: Commands, sub: SubParsers) -> None:
    grid_parser = sub.add_parser("grids", help="Grids of the grid-management centre.")
    grid_sub = grid_parser.add_subparsers(dest="grids_command", required=True)
    p = command(
        "import",
        cmd_grids_import,
        "Import grids from a GeoJSON FeatureCollection (properties code, name, civil_code; Polygon or "
        "MultiPolygon); a grid already known is replaced.",
        grid_sub,
    )
    p.add_argument("--config", required=True)
    p.add_argument("file", help="The .geojson file.")
    p = command("list", cmd_grids_list, "List grids: code, civil code, name.", grid_sub)
    p.add_argument("--config", required=True)
    p = command(
        "place",
        cmd_grids_place,
        "Say where a device (site.device) or camera (site.device.camera) stands, or assign it to a grid.",
        grid_sub,
    )
    p.add_argument("--config", required=True)
    p.add_argument("ref", help="site.device or site.device.camera")
    p.add_argument("--lon", type=float, help="Longitude (WGS84); the grid is the one whose polygon holds it.")
    p.add_argument("--lat", type=float, help="Latitude (WGS84).")
    p.add_argument("--grid", help="Assign to this grid whatever the position.")
    p = command("assign", cmd_grids_assign, "Assign a grid worker to a grid (or --remove).", grid_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--username", required=True)
    p.add_argument("--grid", required=True)
    p.add_argument("--remove", action="store_true", help="Take the grid away instead.")

    inc = sub.add_parser("incidents", help="Grid incidents.")
    inc_sub = inc.add_subparsers(dest="incidents_command", required=True)
    p = command("list", cmd_incidents_list, "List incidents, newest first.", inc_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--status", choices=incidents.STATUSES, help="Only this status.")
    p.add_argument("--grid", help="Only this grid code.")
    p.add_argument("--limit", type=int, default=1000, help="At most this many (default 1000).")
    p.add_argument("--overdue", action="store_true", help="Only incidents past their deadline, not yet resolved.")
    p.add_argument(
        "--json",
        action="store_true",
        help="One JSON object per line (id, status, grid, category, alerts, refs and the rest).",
    )

    tri = sub.add_parser("triage", help="Rules that propose incidents from alerts.")
    tri_sub = tri.add_subparsers(dest="triage_command", required=True)
    p = command("load", cmd_triage_load, "Replace every triage rule with those of a YAML file (rules: [...]).", tri_sub)
    p.add_argument("--config", required=True)
    p.add_argument("file", help="YAML with a `rules` list (docs/incidents.md).")
    p = command("list", cmd_triage_list, "Print the triage rules, one JSON object per line.", tri_sub)
    p.add_argument("--config", required=True)
    register_open311_commands(command, sub)


def cmd_open311_key(args: argparse.Namespace) -> int:
    try:
        key = _with_db(args, lambda conn: open311.issue_key(conn, audit.CLI, args.name))
    except open311.Open311Error as exc:
        raise CommandError(exc.description) from None
    print(key)
    return 0


def cmd_webhooks_add(args: argparse.Namespace) -> int:
    try:
        secret = Path(args.secret_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {args.secret_file}: {exc}") from None
    try:
        _with_db(args, lambda conn: webhooks.add_target(conn, audit.CLI, args.name, args.url, secret))
    except (ValueError, sqlite3.IntegrityError) as exc:
        raise CommandError(f"cannot add {args.name}: {exc}") from None
    print(f"added webhook target {args.name}: every incident change goes to {args.url}")
    return 0


def cmd_webhooks_dead(args: argparse.Namespace) -> int:
    items = _with_db(args, webhooks.dead_letters)
    for item in items:
        print(item.model_dump_json() if args.json else f"{item.id:6} {item.target:16} {item.idempotency_key:28} "
              f"attempts={item.attempts} {item.last_error or ''}")  # fmt: skip
    if not items and not args.json:
        print("(none)")
    return 0


def cmd_webhooks_replay(args: argparse.Namespace) -> int:
    if not _with_db(args, lambda conn: webhooks.replay(conn, audit.CLI, args.id)):
        raise CommandError(f"no dead letter {args.id}")
    print(f"queued {args.id} again")
    return 0


def register_open311_commands(command: Commands, sub: SubParsers) -> None:
    o311 = sub.add_parser("open311", help="The Open311 GeoReport v2 interface.")
    o311_sub = o311.add_subparsers(dest="open311_command", required=True)
    p = command("key", cmd_open311_key, "Make an API key for an Open311 client and print it (shown once).", o311_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--name", required=True, help="Who the key is for, e.g. the city's 12345 hotline.")

    hooks = sub.add_parser("webhooks", help="The outbound connector: signed webhooks of incident changes.")
    hooks_sub = hooks.add_subparsers(dest="webhooks_command", required=True)
    p = command("add", cmd_webhooks_add, "Send every incident change to this URL, signed with the secret.", hooks_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--secret-file", required=True, help="File holding the HMAC secret (16+ characters).")
    p = command("dead", cmd_webhooks_dead, "The dead-letter list: changes given up on after two days.", hooks_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--json", action="store_true")
    p = command("replay", cmd_webhooks_replay, "Queue a dead letter again.", hooks_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--id", type=int, required=True)
