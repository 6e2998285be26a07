"""`diaolou-hub verify-evidence`, `diaolou-hub evidence ...`: evidence packages from the command line.

`verify-evidence` needs no config and no hub: it is what a court's or a police station's IT
officer runs on a copy of the package, with the hub's public key exported once beforehand.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from common.clikit import CommandError, Commands
from hub.commands import cli_connection
from hub.config import load_hub_config
from hub.evidence import keys
from hub.evidence.package import iso
from hub.evidence.verify import verify
from hub.models import Principal, is_site_name
from hub.services import audit, clips

if TYPE_CHECKING:
    from common.clikit import SubParsers


def _key_text(value: str) -> str:
    """--public-key takes a file (PEM or base64) or the base64 key itself."""
    path = Path(value)
    if path.is_file():
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read the public key file {value}: {exc}") from None
    return value


def cmd_verify_evidence(args: argparse.Namespace) -> int:
    key = _key_text(args.public_key) if args.public_key is not None else None
    try:
        result = verify(Path(args.file), key)
    except keys.EvidenceKeyError as exc:
        raise CommandError(f"--public-key: {exc}") from None
    if result.ok:
        print(result.summary())
        return 0
    print(result.summary(), file=sys.stderr)
    return 1


def cmd_public_key(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    try:
        raw = keys.raw_public(keys.load_or_create(config.data_dir))
    except (keys.EvidenceKeyError, OSError) as exc:
        raise CommandError(str(exc)) from None
    if args.pem:
        print(keys.public_pem(raw), end="")
    else:
        print(keys.public_b64(raw))
        print(f"key id {keys.key_id(raw)}", file=sys.stderr)
    return 0


# The CLI is the hub's operator: it sees every clip, as an admin does.
CLI_PRINCIPAL = Principal(user_id=0, username="cli", role="admin", locale="zh")


def cmd_device_token(args: argparse.Namespace) -> int:
    if not is_site_name(args.site) or not is_site_name(args.device):
        raise CommandError("--site and --device are names: lower-case letters, digits, _ and -")
    config = load_hub_config(args.config)
    conn = cli_connection(config)
    try:
        token = clips.issue_device_token(conn, audit.CLI, args.site, args.device)
    finally:
        conn.close()
    print(token)
    print(f"the HTTP credential of {args.site}/{args.device}; any earlier one no longer works", file=sys.stderr)
    return 0


def cmd_clips_list(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    conn = cli_connection(config)
    try:
        items = clips.list_clips(conn, CLI_PRINCIPAL, args.limit).items
    finally:
        conn.close()
    for clip in items:
        if args.json:
            print(clip.model_dump_json())
        else:
            window = f"{iso(clip.start)}..{iso(clip.end)}"
            print(f"{clip.id}  {clip.status:9} {clip.progress:4.0%}  {clip.camera}  {window}  {clip.requested_by}")
    if not items and not args.json:
        print("(none)")
    return 0


def cmd_clips_package(args: argparse.Namespace) -> int:
    config = load_hub_config(args.config)
    out = Path(args.out)
    conn = cli_connection(config)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        clip = clips.package_to(conn, config.data_dir, CLI_PRINCIPAL, audit.CLI, args.id, Path(tmp))
        os.replace(tmp, out)
    except clips.ClipRefused as exc:
        raise CommandError(str(exc)) from None
    finally:
        conn.close()
        Path(tmp).unlink(missing_ok=True)
    print(json.dumps({"clip": clip.id, "package": str(out), "sha256": clip.sha256}))
    return 0


def register_evidence_commands(command: Commands, sub: SubParsers, devices_sub: SubParsers) -> None:
    p = command(
        "verify-evidence",
        cmd_verify_evidence,
        "Check an evidence package offline: exit 0 with a summary when intact, 1 naming what was changed.",
    )
    p.add_argument("file", help="The evidence package (.zip) as downloaded from the hub.")
    p.add_argument(
        "--public-key",
        help="The hub's public key: a file (PEM or base64) or the base64 text. Without it the key inside "
        "the package is used, which proves integrity but not which hub signed it.",
    )
    evidence = sub.add_parser("evidence", help="Evidence packages and the hub's signing key.")
    evidence_sub = evidence.add_subparsers(dest="evidence_command", required=True)
    p = command(
        "public-key",
        cmd_public_key,
        "Print the hub's evidence public key (base64; --pem for PEM), making the key pair on first use.",
        evidence_sub,
    )
    p.add_argument("--config", required=True)
    p.add_argument("--pem", action="store_true", help="PEM (SubjectPublicKeyInfo) instead of one line of base64.")

    p = command(
        "token",
        cmd_device_token,
        "Print a new HTTP credential for a box (clip uploads); it replaces the box's old one.",
        devices_sub,
    )
    p.add_argument("--config", required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--device", required=True)

    clips_parser = sub.add_parser("clips", help="Evidence clips asked of the boxes.")
    clips_sub = clips_parser.add_subparsers(dest="clips_command", required=True)
    p = command("list", cmd_clips_list, "Clips, newest first, with status and progress.", clips_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="One JSON object per line.")
    p = command(
        "package",
        cmd_clips_package,
        "Write the signed evidence package of a ready clip (recorded as a download by `cli`).",
        clips_sub,
    )
    p.add_argument("id")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, help="Where to write the package (.zip).")
