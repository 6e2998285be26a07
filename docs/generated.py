"""The shared command line of the doc generators: write the file, `--check` it, or `--stdout`."""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def generator_main(output: Path, render: Callable[[], str], description: str, argv: list[str] | None = None) -> int:
    rel = output.relative_to(REPO).as_posix()
    parser = argparse.ArgumentParser(description=description)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help=f"Exit 1 if {rel} is out of date.")
    mode.add_argument("--stdout", action="store_true", help="Print the document instead of writing it.")
    args = parser.parse_args(argv)
    text = render()
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True), text.splitlines(keepends=True), f"{rel} (on disk)", f"{rel} (generated)"
        )
        sys.stderr.writelines(list(diff)[:60])
        print(f"\n{rel} is out of date: run .venv/bin/python {sys.argv[0]}", file=sys.stderr)
        return 1
    with open(output, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    print(f"wrote {rel}")
    return 0
