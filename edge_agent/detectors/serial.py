"""Run every inference of a process on one thread.

Several cameras calling one onnxruntime session from their own threads each leave glibc a
per-thread heap full of freed inference buffers: measured, 4 cameras peaked at 344 MiB resident
against 232 MiB when inference is kept on one thread. One inference thread costs no throughput
on a 1-2 core box (inference is CPU-bound and a session's own threads do the parallel work).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from edge_agent.detectors.base import Detection, Detector

_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")


class SerialDetector:
    """A `Detector` whose `detect` runs on the process's single inference thread."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.name = inner.name
        # HOG's smallest useful crop, read by the pipeline (see pipeline.CameraAnalyzer).
        self.min_input: tuple[int, int] = getattr(inner, "min_input", (0, 0))

    def detect(self, image: np.ndarray) -> list[Detection]:
        return _executor.submit(self.inner.detect, image).result()
