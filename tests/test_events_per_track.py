"""One event per appearance with the default settings, because events follow tracks.

The real footage (one-by-one-person-detection.mp4) has two gaps between visitors shorter than
the default `end_after_seconds`: an event that ended on a camera-wide timer joined those
visitors. Variants made from it here, at run time, check that it is the tracks that make the
events and not the footage's particular timing:

- mirrored: people walk in from the other side and leave by the other edge;
- twice as fast: every other frame, so people move twice as far between analysed frames and
  every gap is halved;
- gaps cut: the empty stretches between visitors cut down to GAP seconds, far below
  `end_after_seconds` (the next visitor is detected well under a second after the last one was
  last seen), as it is and mirrored;
- vanish in place: the person standing at the table is replaced by the empty room for
  VANISH_SECONDS (an occlusion, or the detector missing them): still one event.

Each must give exactly one event per appearance (start within 1 s of the arrival, end within
2 s of the departure), so none in the empty stretches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from edge_agent.config.schema import DetectConfig
from edge_agent.detectors.loader import load_detector
from edge_agent.offline import detect_video
from edge_agent.testvideo import encode_h264
from models.registry import install_model
from tests.conftest import SHARED
from tests.test_detection_eval import APPEARANCES, Lines

Appearances = list[tuple[float, float]]
Transform = Callable[[float, np.ndarray], np.ndarray | None]  # (t, frame) -> frame to keep, or None

GAP = 1.0  # s of empty room left between one visitor's departure and the next one's arrival
VANISH_START, VANISH_SECONDS = 30.0, 2.0  # the second visitor stands at the table from 24 s to 43 s
EMPTY_ROOM_AT = 2.0  # s: nobody in view
SOURCE_FPS = 10


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    install_model("yolox-nano", directory, str(SHARED / "models" / "yolox_nano.onnx"))
    return directory


def frames(video: Path) -> Iterator[tuple[float, np.ndarray]]:
    with av.open(str(video)) as container:
        for frame in container.decode(video=0):
            yield float(frame.pts * frame.time_base), frame.to_ndarray(format="bgr24")


def variant(footage: Path, path: Path, transform: Transform) -> Path:
    kept = (out for t, img in frames(footage) if (out := transform(t, img)) is not None)
    return encode_h264(kept, path, fps=SOURCE_FPS, width=768, height=432, gop=20, crf=23)


def events(video: Path, models_dir: Path) -> list[dict[str, object]]:
    out = Lines()
    settings = DetectConfig()  # the default configuration, as `detect --events` without --config
    detector = load_detector("yolox-nano", models_dir, settings.threshold, threads=1)
    detect_video(video, detector, settings, out, events=True)  # type: ignore[arg-type]
    return out.json()


def assert_one_event_per_appearance(found: list[dict[str, object]], appearances: Appearances) -> None:
    assert len(found) == len(appearances), found
    for event, (first, last) in zip(found, appearances, strict=True):
        start, end = float(event["start"]), float(event["end"])  # type: ignore[arg-type]
        assert first - 1.0 <= start <= first + 1.0, (event, first)
        assert last - 2.0 <= end <= last + 2.0, (event, last)


def cuts(appearances: Appearances, gap: float) -> list[tuple[float, float]]:
    """The middle of every empty stretch between two visitors, so that `gap` seconds remain."""
    return [(last + gap / 2, first - gap / 2) for (_, last), (first, _) in pairwise(appearances)]


def after_cuts(t: float, removed: list[tuple[float, float]]) -> float:
    return t - sum(min(b, t) - a for a, b in removed if t > a)


def test_the_footage_itself(footage: Path, models_dir: Path) -> None:
    gaps = [b[0] - a[1] for a, b in pairwise(APPEARANCES)]
    assert min(gaps) < DetectConfig().end_after_seconds  # the case the camera-wide timer got wrong
    assert_one_event_per_appearance(events(footage, models_dir), APPEARANCES)


def test_mirrored(footage: Path, models_dir: Path, tmp_path: Path) -> None:
    video = variant(footage, tmp_path / "mirrored.mp4", lambda t, img: cv2.flip(img, 1))
    assert_one_event_per_appearance(events(video, models_dir), APPEARANCES)


def test_twice_as_fast(footage: Path, models_dir: Path, tmp_path: Path) -> None:
    def every_other(t: float, img: np.ndarray) -> np.ndarray | None:
        return img if round(t * SOURCE_FPS) % 2 == 0 else None

    video = variant(footage, tmp_path / "fast.mp4", every_other)
    assert_one_event_per_appearance(events(video, models_dir), [(a / 2, b / 2) for a, b in APPEARANCES])


@pytest.mark.parametrize("mirrored", [False, True])
def test_gaps_between_visitors_cut_short(footage: Path, models_dir: Path, tmp_path: Path, mirrored: bool) -> None:
    removed = cuts(APPEARANCES, GAP)
    assert all(b > a for a, b in removed)

    def cut(t: float, img: np.ndarray) -> np.ndarray | None:
        if any(a <= t < b for a, b in removed):
            return None
        return cv2.flip(img, 1) if mirrored else img

    video = variant(footage, tmp_path / "gaps.mp4", cut)
    moved = [(after_cuts(a, removed), after_cuts(b, removed)) for a, b in APPEARANCES]
    assert all(b[0] - a[1] <= GAP + 0.1 for a, b in pairwise(moved))
    assert_one_event_per_appearance(events(video, models_dir), moved)


def test_a_person_who_vanishes_in_place_for_a_moment_stays_one_event(
    footage: Path, models_dir: Path, tmp_path: Path
) -> None:
    empty = next(img for t, img in frames(footage) if t >= EMPTY_ROOM_AT)
    band = slice(int(0.4 * empty.shape[1]), int(0.8 * empty.shape[1]))  # the table, where they stand

    def vanish(t: float, img: np.ndarray) -> np.ndarray:
        if VANISH_START <= t < VANISH_START + VANISH_SECONDS:
            img = img.copy()
            img[:, band] = empty[:, band]
        return img

    video = variant(footage, tmp_path / "vanish.mp4", vanish)
    assert_one_event_per_appearance(events(video, models_dir), APPEARANCES)
