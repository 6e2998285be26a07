"""What `diaolou-agent` and `diaolou-hub` share: the root parser, sub-commands, and turning
errors into the documented exit statuses (2: broken config, 1: any other failure)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from common.configfile import ConfigError

EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2

Handler = Callable[[argparse.Namespace], int]
if TYPE_CHECKING:
    # argparse has no public name for it, and the class is not subscriptable at run time.
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


class CommandError(Exception):
    """A user-facing failure: printed as `error: ...`, exit status 1."""


def root_parser(prog: str, description: str, version: str) -> tuple[argparse.ArgumentParser, SubParsers]:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {version}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser, parser.add_subparsers(dest="command", required=True)


class Commands:
    """`command(name, func, help[, parent])` adds a sub-command that runs `func`."""

    def __init__(self, root: SubParsers) -> None:
        self.root = root

    def __call__(
        self,
        name: str,
        func: Handler,
        help: str,
        parent: SubParsers | None = None,
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = (parent or self.root).add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # an unexpected failure still gets the documented status, and a trace in the log
        logging.getLogger(parser.prog).exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
