"""`python -m demo` / `diaolou-demo`."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from demo.run import run_demo


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="diaolou-demo",
        description="Run the whole loop on this machine: embedded broker, hub with its web UI, one agent with a "
        "camera, and three users. Ctrl-C stops it, cuts a clip and lists what the hub received.",
    )
    parser.add_argument("--dir", default="demo-data", help="Where the demo keeps its recordings, hub data and logins.")
    parser.add_argument("--seconds", type=float, default=None, help="Stop after this many seconds.")
    parser.add_argument("--port", type=int, default=8080, help="The web UI's port (0: any free port).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_demo(Path(args.dir), seconds=args.seconds, web_port=args.port)


if __name__ == "__main__":
    sys.exit(main())
