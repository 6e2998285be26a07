"""Detector by registry name, one instance per configuration per process.

Every camera of a box asks for its detector here; the cache makes them share one loaded model
(one onnxruntime session holds the weights once, see onnx_detector.shared_session) instead of one
copy per camera. The key includes the threshold because it is per-instance state: two cameras
with different thresholds get two light detector objects over the same session.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import cast

from edge_agent.detectors.base import Detector
from edge_agent.detectors.serial import SerialDetector
from models.registry import ModelEntry, ModelError, get_entry, model_path

_cache: dict[tuple[str, str, int, float], Detector] = {}
# Held while loading: two cameras starting at once must not both load the same model.
_lock = threading.Lock()


def load_detector(
    name: str, models_dir: Path, threshold: float = 0.5, threads: int = 1, serial: bool = False
) -> Detector:
    """The detector `name` from the registry; ModelError (with the install command) if it is not installed.

    `serial=True` (the live agent, several cameras) runs its inferences on one thread: see serial.py."""
    entry = get_entry(name)
    # A builtin model does not live in models_dir, so the directory must not split its cache entries.
    where = "" if entry.builtin else str(Path(models_dir).resolve())
    key = (name, where, threads, float(threshold))
    with _lock:
        cached = _cache.get(key)
        if cached is None:
            cached = _cache[key] = _load(entry, name, models_dir, threshold, threads)
    return SerialDetector(cached) if serial else cached


def _load(entry: ModelEntry, name: str, models_dir: Path, threshold: float, threads: int) -> Detector:
    if entry.family == "hog":
        return _load_hog(threshold, threads)
    # Imported here so that listing or installing models never pulls in onnxruntime and cv2.
    from edge_agent.detectors.onnx_detector import OnnxDetector

    return OnnxDetector(entry, model_path(name, models_dir), threshold=threshold, threads=threads)


def _load_hog(threshold: float, threads: int) -> Detector:
    # HogDetector is built by its own module (models/hog_graph.py makes its graph); imported lazily
    # so the ONNX detectors work whether or not it is present in this checkout.
    try:
        module = importlib.import_module("edge_agent.detectors.hog")
    except ImportError as exc:
        raise ModelError(f"the builtin HOG people detector is not available: {exc}") from exc
    return cast(Detector, module.HogDetector(threshold=threshold, threads=threads))


def clear_cache() -> None:
    """Forget cached detectors (tests; a config reload that changes models)."""
    with _lock:
        _cache.clear()
