"""Detector benchmark (issue "Edge detection"): milliseconds per frame of each person detector.

For each model (yolox-nano, fastestdet, and hog-people when its module is present) it runs the
detector on one real frame of ../shared/data/video/one-by-one-person-detection.mp4 at the model's
native input size, with 1 and 2 onnxruntime threads, and reports the median over N runs after a
warm-up of:

* detect: the whole `Detector.detect` call (resize/letterbox, inference, decode, NMS, mapping);
* infer: the onnxruntime `run` alone (ONNX models only);
* CPU per frame: process CPU time (user + system, all threads) / runs, so a thread pool that
  busy-waits shows up even when the wall time looks good.

Runs are paced (`--gap-ms`, default 50 ms) as frames arrive on a box analysing ~5 fps: without a
gap, idle pool threads never get the chance to spin and the CPU column would flatter them. A
last row per model puts two cameras on one shared 1-thread session (two threads calling
`detect` at once, unpaced) and reports the throughput.

    .venv/bin/python bench/detector_ms.py [--runs 50] [--warmup 10] [--gap-ms 50]

Models are installed (SHA-256 checked) from ../shared/models into bench/work/models (git-ignored).
Prints a markdown table and writes it to bench/results/detector_ms.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge_agent.detectors.base import Detector  # noqa: E402
from edge_agent.detectors.loader import load_detector  # noqa: E402
from edge_agent.detectors.onnx_detector import OnnxDetector, preprocess  # noqa: E402
from models.registry import ModelError, get_entry, install_model, model_path  # noqa: E402

SHARED = REPO.parent / "shared"
VIDEO = SHARED / "data" / "video" / "one-by-one-person-detection.mp4"
SOURCES = {"yolox-nano": SHARED / "models" / "yolox_nano.onnx", "fastestdet": SHARED / "models" / "FastestDet.onnx"}
MODELS_DIR = REPO / "bench" / "work" / "models"
RESULTS = REPO / "bench" / "results" / "detector_ms.md"

Image = npt.NDArray[np.uint8]


@dataclass
class Row:
    model: str
    config: str
    detect_ms: float
    infer_ms: float | None
    cpu_ms: float
    people: int


def read_frame(path: Path, index: int) -> Image:
    cap = cv2.VideoCapture(str(path))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok:
        raise SystemExit(f"cannot read frame {index} of {path}")
    return np.asarray(frame, dtype=np.uint8)


def ensure_installed(name: str) -> None:
    try:
        model_path(name, MODELS_DIR)
    except ModelError:
        install_model(name, MODELS_DIR, str(SOURCES[name]))


def timed_with_idle(fn: Callable[[], object], runs: int, warmup: int, gap_s: float) -> tuple[float, float]:
    """(median wall ms per call, CPU ms per call). The CPU window covers the idle gaps after each
    call too: that is where a spinning thread pool burns its CPU."""
    for _ in range(warmup):
        fn()
    walls: list[float] = []
    c0 = time.process_time()
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        if gap_s:
            time.sleep(gap_s)
    cpu = time.process_time() - c0
    return statistics.median(walls) * 1000, cpu / runs * 1000


def bench_onnx(name: str, frame: Image, args: argparse.Namespace) -> list[Row]:
    entry = get_entry(name)
    path = model_path(name, MODELS_DIR)
    gap = args.gap_ms / 1000
    rows: list[Row] = []
    for threads, spinning in ((1, False), (2, False), (2, True)):
        det = OnnxDetector(entry, path, threshold=args.threshold, threads=threads, spinning=spinning)
        tensor, _ = preprocess(frame, entry)
        infer_ms, _ = timed_with_idle(functools.partial(det.infer, tensor), args.runs, args.warmup, gap)
        detect_ms, cpu_ms = timed_with_idle(functools.partial(det.detect, frame), args.runs, args.warmup, gap)
        label = f"{threads} thread{'s' if threads > 1 else ''}" + (", spinning" if spinning else "")
        rows.append(Row(name, label, detect_ms, infer_ms, cpu_ms, len(det.detect(frame))))
    rows.append(concurrent_row(OnnxDetector(entry, path, threshold=args.threshold, threads=1), frame, args))
    return rows


def concurrent_row(det: Detector, frame: Image, args: argparse.Namespace) -> Row:
    """Two cameras, one shared 1-thread session, both calling detect at once (no pacing)."""
    for _ in range(args.warmup):
        det.detect(frame)
    walls: list[list[float]] = [[], []]

    def camera(i: int) -> None:
        for _ in range(args.runs):
            t0 = time.perf_counter()
            det.detect(frame)
            walls[i].append(time.perf_counter() - t0)

    c0, t0 = time.process_time(), time.perf_counter()
    workers = [threading.Thread(target=camera, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    frames = 2 * args.runs
    per_frame_wall = elapsed / frames * 1000  # effective ms per frame across both cameras
    median_call = statistics.median(walls[0] + walls[1]) * 1000
    return Row(
        det.name,
        f"2 cameras x 1 thread, shared session ({per_frame_wall:.1f} ms/frame effective)",
        median_call,
        None,
        cpu / frames * 1000,
        len(det.detect(frame)),
    )


def bench_hog(frame: Image, args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    for threads in (1, 2):
        try:
            det = load_detector("hog-people", MODELS_DIR, threshold=args.threshold, threads=threads)
        except ModelError as exc:
            print(f"hog-people skipped: {exc}", file=sys.stderr)
            return []
        gap = args.gap_ms / 1000
        detect_ms, cpu_ms = timed_with_idle(functools.partial(det.detect, frame), args.runs, args.warmup, gap)
        label = f"{threads} thread{'s' if threads > 1 else ''}"
        rows.append(Row("hog-people", label, detect_ms, None, cpu_ms, len(det.detect(frame))))
    return rows


def render(rows: list[Row], args: argparse.Namespace, frame: Image) -> str:
    h, w = frame.shape[:2]
    cpu = _cpu_model()
    lines = [
        "# Detector benchmark: `bench/detector_ms.py`",
        "",
        f"Latest run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} CPUs ({cpu}), "
        f"Python {platform.python_version()}, onnxruntime {ort.__version__}, OpenCV {cv2.__version__}.",
        f"Frame {args.frame} of `{VIDEO.name}` ({w}x{h}); each model at its native input size. "
        f"Median of {args.runs} runs after {args.warmup} warm-up runs, {args.gap_ms:g} ms idle between "
        f"runs (as at ~5 fps); threshold {args.threshold}. CPU per frame counts all threads, idle gaps included.",
        "",
        "| model | configuration | detect ms (median) | inference ms (median) | CPU ms per frame | people |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        infer = f"{r.infer_ms:.1f}" if r.infer_ms is not None else "-"
        lines.append(f"| {r.model} | {r.config} | {r.detect_ms:.1f} | {infer} | {r.cpu_ms:.1f} | {r.people} |")
    lines += [
        "",
        "detect = the whole `Detector.detect` (resize/letterbox, inference, decode, NMS, box mapping); "
        "inference = onnxruntime `run` alone. `spinning` lets idle pool threads busy-wait "
        "(onnxruntime's default; the project turns it off). The shared-session row runs two cameras "
        "at once on one 1-thread session: detect ms is per call, the effective figure is wall time / frames.",
    ]
    return "\n".join(lines) + "\n"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--gap-ms", type=float, default=50.0, help="idle time between runs")
    parser.add_argument("--frame", type=int, default=300, help="frame index in the test video")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--no-write", action="store_true", help="print only, keep bench/results as it is")
    args = parser.parse_args()

    frame = read_frame(VIDEO, args.frame)
    rows: list[Row] = []
    for name in ("yolox-nano", "fastestdet"):
        ensure_installed(name)
        rows += bench_onnx(name, frame, args)
    rows += bench_hog(frame, args)
    table = render(rows, args, frame)
    print(table)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(table, encoding="utf-8")
        print(f"written {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
