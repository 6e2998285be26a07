"""`diaolou-agent`: the command line mirrors the Python API (Agent, RingBuffer, export_clip, ...).

Every command that takes --config validates it first and exits with status 2 and the error
(file, key path, what is wrong) when it is broken; other failures exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pydantic import ValidationError

from edge_agent import __version__
from edge_agent.config import AgentConfig, ConfigError, load_config
from edge_agent.config.loader import format_validation_error
from edge_agent.config.template import parse_camera_arg, render_config

if TYPE_CHECKING:
    from edge_agent.agent import RingBuffer

log = logging.getLogger("diaolou.agent")

EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2


class CommandError(Exception):
    """A user-facing failure: printed as `error: ...`, exit status 1."""


def _time(text: str) -> float:
    from edge_agent.record.segment import parse_iso

    try:
        return parse_iso(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r} (e.g. 2026-11-28T02:13:00Z)") from None


def _open_storage(config: AgentConfig) -> RingBuffer:
    from edge_agent.agent import RingBuffer

    try:
        return RingBuffer.open(config, create=False)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None


def _camera(config: AgentConfig, storage: RingBuffer, name: str) -> str:
    """Only configured cameras, or removed ones that still have recordings: never a free-form path."""
    if name not in config.cameras and name not in storage.index.cameras():
        known = ", ".join(config.cameras) or "none"
        storage.close()
        raise CommandError(f"unknown camera {name!r} (configured: {known})")
    return name


# --- commands ---------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from edge_agent.agent import Agent

    config = load_config(args.config)
    agent = Agent(config)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.start()
    try:
        if args.seconds:
            agent.stop_event.wait(args.seconds)
        else:
            agent.wait()
    finally:
        agent.shutdown()
    return 0


def cmd_clip(args: argparse.Namespace) -> int:
    from edge_agent.record.clip import ClipError, export_clip

    config = load_config(args.config)
    storage = _open_storage(config)
    camera = _camera(config, storage, args.camera)
    try:
        manifest = export_clip(
            storage.root,
            storage.index,
            camera,
            args.start,
            args.end,
            Path(args.out),
            site=config.site,
            device=config.device,
        )
    except ClipError as exc:
        raise CommandError(str(exc)) from None
    finally:
        storage.close()
    print(json.dumps(manifest.as_dict(), indent=2))
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    from edge_agent.record.clip import find_segments
    from edge_agent.record.timeline import build_timeline

    config = load_config(args.config)
    storage = _open_storage(config)
    camera = _camera(config, storage, args.camera)
    end = args.end if args.end is not None else time.time()
    start = args.start if args.start is not None else end - 86400
    try:
        timeline = build_timeline(camera, find_segments(storage.root, storage.index, camera, start, end), start, end)
    finally:
        storage.close()
    if args.json:
        print(json.dumps(timeline.as_dict(), indent=2))
        return 0
    window = timeline.as_dict()
    print(f"{camera}: {timeline.recorded_seconds:.0f} s recorded between {window['start']} and {window['end']}")
    for span in timeline.spans:
        d = span.as_dict()
        print(f"  recorded {d['start']} .. {d['end']}  ({d['seconds']} s, {span.segments} segments)")
    for gap in timeline.gaps:
        d = gap.as_dict()
        print(f"  gap      {d['start']} .. {d['end']}  ({d['seconds']} s)")
    return 0


def cmd_hold_add(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    storage = _open_storage(config)
    camera = _camera(config, storage, args.camera)
    try:
        hold = storage.index.add_hold(camera, args.start, args.end, args.reason)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    finally:
        storage.close()
    print(json.dumps({"hold": hold.id, "camera": camera, "reason": hold.reason}))
    return 0


def cmd_hold_list(args: argparse.Namespace) -> int:
    from edge_agent.record.segment import iso

    config = load_config(args.config)
    storage = _open_storage(config)
    try:
        for hold in storage.index.holds(args.camera):
            print(
                json.dumps(
                    {
                        "hold": hold.id,
                        "camera": hold.camera,
                        "start": iso(hold.start),
                        "end": iso(hold.end),
                        "reason": hold.reason,
                    }
                )
            )
    finally:
        storage.close()
    return 0


def cmd_hold_release(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    storage = _open_storage(config)
    try:
        if not storage.index.release_hold(args.id):
            raise CommandError(f"no hold with id {args.id}")
    finally:
        storage.close()
    print(json.dumps({"released": args.id}))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from edge_agent.agent import STATUS_FILE
    from edge_agent.record.segment import iso

    config = load_config(args.config)
    status_path = config.storage.root / STATUS_FILE
    storage = _open_storage(config)
    try:
        totals = storage.index.totals()
    finally:
        storage.close()
    for row in totals.values():
        row["first"], row["last"] = iso(row["first"]), iso(row["last"])
    live = json.loads(status_path.read_text(encoding="utf-8")) if status_path.exists() else None
    if live is not None:
        live["age_seconds"] = round(time.time() - live["time"], 1)  # a stale file: the agent is not running
        live["time"] = iso(live["time"])
        for camera in live["cameras"]:
            camera["since"] = iso(camera["since"])
    print(json.dumps({"recorded": totals, "agent": live}, indent=2))
    return 0


def cmd_config_init(args: argparse.Namespace) -> int:
    try:
        cameras = [parse_camera_arg(c) for c in args.camera]
        text = render_config(
            storage=Path(args.storage),
            cameras=cameras,
            site=args.site,
            device=args.device,
            mqtt=args.mqtt,
            record_only=args.record_only,
        )
    except ValidationError as exc:
        raise CommandError(format_validation_error(exc, "config init")) from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(text, end="")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    print(f"{args.file}: OK ({len(config.cameras)} cameras, storage {config.storage.root})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edge_agent.demo import run_demo

    return run_demo(Path(args.dir), seconds=args.seconds)


# --- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diaolou-agent", description="Diaolou edge agent")
    parser.add_argument("--version", action="version", version=f"diaolou-agent {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str,
        func: Callable[[argparse.Namespace], int],
        help: str,
        parent: argparse._SubParsersAction[argparse.ArgumentParser] = sub,
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("run", cmd_run, "Record every configured camera until SIGTERM/SIGINT.")
    p.add_argument("--config", required=True)
    p.add_argument("--seconds", type=float, default=None, help="Stop after this many seconds (tests, demos).")

    p = command("clip", cmd_clip, "Write one MP4 (stream copy) covering [start, end] plus a SHA-256 manifest.")
    p.add_argument("--config", required=True)
    p.add_argument("--camera", required=True)
    p.add_argument("--start", required=True, type=_time)
    p.add_argument("--end", required=True, type=_time)
    p.add_argument("--out", required=True)

    p = command("timeline", cmd_timeline, "Recorded spans and gaps of a camera (default: the last 24 h).")
    p.add_argument("--config", required=True)
    p.add_argument("--camera", required=True)
    p.add_argument("--start", type=_time)
    p.add_argument("--end", type=_time)
    p.add_argument("--json", action="store_true")

    hold = sub.add_parser("hold", help="Legal holds: segments under a hold are never deleted.")
    hold_sub = hold.add_subparsers(dest="hold_command", required=True)
    p = command("add", cmd_hold_add, "Put a camera's recording in [start, end] on hold.", hold_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--camera", required=True)
    p.add_argument("--start", required=True, type=_time)
    p.add_argument("--end", required=True, type=_time)
    p.add_argument("--reason", required=True, help="Case number or reason; kept with the hold.")
    p = command("list", cmd_hold_list, "List holds.", hold_sub)
    p.add_argument("--config", required=True)
    p.add_argument("--camera")
    p = command("release", cmd_hold_release, "Release a hold by id.", hold_sub)
    p.add_argument("--config", required=True)
    p.add_argument("id", type=int)

    p = command("status", cmd_status, "What is recorded per camera, and the running agent's last status.")
    p.add_argument("--config", required=True)

    config = sub.add_parser("config", help="Create or check a config file.")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    p = command("init", cmd_config_init, "Print a complete, commented config.", config_sub)
    p.add_argument("--storage", required=True, help="Ring-buffer directory.")
    p.add_argument("--site", default="site")
    p.add_argument("--device", default="box")
    p.add_argument("--mqtt", help="mqtt://[user:password@]host:port or mqtts://...")
    p.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="NAME=SOURCE",
        help="rtsp:// URL, video file or /dev/videoN; repeat for more cameras.",
    )
    p.add_argument("--record-only", action="store_true", help="Cameras record without analysis.")
    p = command("check", cmd_config_check, "Validate a config file; exit 2 with the error if it is broken.", config_sub)
    p.add_argument("file")

    p = command("demo", cmd_demo, "Record a simulated camera into a ring buffer, then cut a clip.")
    p.add_argument("--dir", default="demo-data")
    p.add_argument("--seconds", type=float, default=None, help="Stop after this long (default: until Ctrl-C).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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


if __name__ == "__main__":
    sys.exit(main())
