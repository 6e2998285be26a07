"""`diaolou-hub`: placeholder entry point until the ingest issue lands its commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hub import __version__


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="diaolou-hub",
        description="Diaolou hub. Ingest, devices and the web UI are not built yet; "
        "see the open issues. Today the edge agent runs on its own (diaolou-agent).",
    )
    parser.add_argument("--version", action="version", version=f"diaolou-hub {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
