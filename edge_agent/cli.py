"""`diaolou-agent`: the command line mirrors the Python API (Agent, RingBuffer, export_clip, ...).

Every command that takes --config validates it first and exits with status 2 and the error
(file, key path, what is wrong) when it is broken; other failures exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pydantic import ValidationError

from common.clikit import CommandError, Commands, root_parser, run
from common.configfile import format_validation_error
from edge_agent import __version__
from edge_agent.config import AgentConfig, ConfigError, check_runtime, check_storage, load_config
from edge_agent.config.loader import config_warnings
from edge_agent.config.schema import DetectConfig
from edge_agent.config.template import parse_camera_arg, parse_door_arg, render_config
from edge_agent.gate.commands import add_commands as add_gate_commands

if TYPE_CHECKING:
    from edge_agent.agent import RingBuffer

log = logging.getLogger("diaolou.agent")


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
    except (OSError, sqlite3.Error) as exc:
        raise CommandError(f"cannot open the ring buffer in {config.storage.root}: {exc}") from None


def _positive(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"expected 1 to 1000, got {value}")
    return value


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
    check_runtime(config, args.config)
    for warning in config_warnings(config, args.config):
        log.warning("%s", warning)
    try:
        agent = Agent(config)
    except (OSError, sqlite3.Error) as exc:  # the checks passed, yet the storage would not open
        raise ConfigError(
            f"{args.config}: storage.root: cannot open the ring buffer in {config.storage.root}: {exc}; "
            "check that the service's user may write there"
        ) from None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        agent.start()
    except RuntimeError as exc:  # another agent holds this ring buffer
        raise CommandError(str(exc)) from None
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
        if gap.path:
            print(f"           damaged: {gap.path}: {gap.problem}")
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
        doors = [parse_door_arg(d) for d in args.door]
        text = render_config(
            storage=Path(args.storage),
            cameras=cameras,
            site=args.site,
            device=args.device,
            mqtt=args.mqtt,
            record_only=args.record_only,
            models_dir=Path(args.models_dir) if args.models_dir else None,
            doors=doors,
            hub=args.hub,
            hub_token_file=Path(args.hub_token_file) if args.hub_token_file else None,
        )
    except ValidationError as exc:
        raise CommandError(format_validation_error(exc, "config init")) from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    print(text, end="")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    check_runtime(config, args.file)
    for warning in config_warnings(config, args.file):
        print(f"warning: {warning}", file=sys.stderr)
    doors = f", {len(config.doors)} doors" if config.doors else ""
    print(f"{args.file}: OK ({len(config.cameras)} cameras{doors}, storage {config.storage.root})")
    return 0


def _models_dir(args: argparse.Namespace) -> Path:
    if args.models_dir:
        return Path(args.models_dir)
    if args.config:
        return load_config(args.config).models_dir
    from edge_agent.config.schema import AgentConfig as _Config

    return _Config().models_dir


def cmd_models_list(args: argparse.Namespace) -> int:
    from models.registry import list_models

    for m in list_models(_models_dir(args)):
        flags = [f for f, on in (("recommended", m.recommended), ("default", m.default), ("built-in", m.builtin)) if on]
        state = "installed" if m.installed else "not installed"
        print(f"{m.name:12} {m.family:11} {state:14} {m.licence:13} {' '.join(flags)}")
    return 0


def cmd_models_install(args: argparse.Namespace) -> int:
    from models.registry import ModelError, install_model

    try:
        path = install_model(args.name, _models_dir(args), args.source)
    except ModelError as exc:
        raise CommandError(str(exc)) from None
    print(f"installed {args.name} -> {path}")
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from edge_agent.config.schema import AgentConfig as _Config
    from edge_agent.detectors.loader import load_detector
    from edge_agent.detectors.select import resolve_model
    from edge_agent.offline import detect_image, detect_video, is_image
    from models.registry import ModelError

    config = load_config(args.config) if args.config else _Config()
    settings = DetectConfig()
    if args.camera:
        if args.camera not in config.cameras:
            raise CommandError(f"unknown camera {args.camera!r}")
        settings = config.cameras[args.camera].detect
    elif config.cameras:
        settings = next(iter(config.cameras.values())).detect
    overrides = {
        k: v
        for k, v in (
            ("fps", args.fps),
            ("threshold", args.threshold),
            ("min_score", args.min_score),
            ("full_frame", args.full_frame or None),
        )
        if v is not None
    }
    try:
        settings = DetectConfig.model_validate({**settings.model_dump(), **overrides})
    except ValidationError as exc:
        raise CommandError(format_validation_error(exc, "detect options")) from None
    path = Path(args.path)
    if not path.exists():
        raise CommandError(f"{path}: no such file")
    models_dir = Path(args.models_dir) if args.models_dir else config.models_dir
    try:
        name = resolve_model(args.model or settings.model, models_dir)
        detector = load_detector(name, models_dir, settings.threshold, args.threads)
    except ModelError as exc:
        raise CommandError(str(exc)) from None
    try:
        if is_image(path):
            detect_image(path, detector, sys.stdout)
        else:
            detect_video(path, detector, settings, sys.stdout, events=args.events, timezone=config.timezone)
    except (ValueError, OSError) as exc:
        raise CommandError(f"{path}: {exc}") from None
    return 0


def cmd_test_alarm(args: argparse.Namespace) -> int:
    from edge_agent.comms import send_test_alarms

    config = load_config(args.config)
    check_storage(config, args.config)
    result = send_test_alarms(config, count=args.count, wait_seconds=args.wait)
    print(result.message)
    return 0 if result.ok else 1


# --- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser, sub = root_parser("diaolou-agent", "Diaolou edge agent", __version__)
    command = Commands(sub)

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
    p.add_argument("--hub", help="http(s)://HOST:PORT of the hub's web API (evidence clip uploads).")
    p.add_argument("--hub-token-file", help="File holding this box's device token (diaolou-hub devices token).")
    p.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="NAME=SOURCE",
        help="rtsp:// URL, video file or /dev/videoN; repeat for more cameras.",
    )
    p.add_argument(
        "--door", action="append", default=[], metavar="NAME=BUILDING", help="A gate door; repeat for more doors."
    )
    p.add_argument("--record-only", action="store_true", help="Cameras record without analysis.")
    p.add_argument("--models-dir", help="Where detector models are installed (default /var/lib/diaolou/models).")
    p = command("check", cmd_config_check, "Validate a config file; exit 2 with the error if it is broken.", config_sub)
    p.add_argument("file")

    add_gate_commands(command, sub)

    models = sub.add_parser("models", help="Person detector models: list, install.")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    for name, func, text in (
        ("list", cmd_models_list, "List the registry's models and which are installed."),
        ("install", cmd_models_install, "Install a model (SHA-256 checked) from the registry URL, a file or a URL."),
    ):
        p = command(name, func, text, models_sub)
        p.add_argument("--config", help="Take models_dir from this agent config.")
        p.add_argument("--models-dir", help="Models directory (default: the config's, else /var/lib/diaolou/models).")
        if name == "install":
            p.add_argument("name")
            p.add_argument("--from", dest="source", help="Local file or http(s) URL instead of the registry URL.")

    p = command("detect", cmd_detect, "Run the live detection pipeline on an image or video; print JSON lines.")
    p.add_argument("path")
    p.add_argument("--model", help="Registry model name (default: the camera's detect.model, auto).")
    p.add_argument("--config", help="Agent config: detection settings of --camera (or its first camera).")
    p.add_argument("--camera")
    p.add_argument("--models-dir")
    p.add_argument("--fps", type=float)
    p.add_argument("--threshold", type=float)
    p.add_argument("--min-score", type=float)
    p.add_argument("--full-frame", action="store_true", help="Run the detector on every whole frame.")
    p.add_argument("--threads", type=int, default=1, help="Inference threads.")
    p.add_argument("--events", action="store_true", help="Print one line per event instead of per frame.")

    p = command(
        "test-alarm",
        cmd_test_alarm,
        "Send test events through the outbox and the MQTT link (via the running agent if there is one).",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--count", type=_positive, default=1, help="How many test events (1-1000).")
    p.add_argument("--wait", type=float, default=30.0, help="Seconds to wait for the broker's acknowledgements.")

    p.add_argument("--seconds", type=float, default=None, help="Stop after this long (default: until Ctrl-C).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
