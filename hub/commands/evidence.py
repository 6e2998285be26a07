"""`diaolou-hub verify-evidence`, `diaolou-hub evidence ...`: evidence packages from the command line.

`verify-evidence` needs no config and no hub: it is what a court's or a police station's IT
officer runs on a copy of the package, with the hub's public key exported once beforehand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from common.clikit import CommandError, Commands
from hub.config import load_hub_config
from hub.evidence import keys
from hub.evidence.verify import verify

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


def register_evidence_commands(command: Commands, sub: SubParsers) -> None:
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
