"""Detection on real footage, through the same pipeline the live agent runs.

one-by-one-person-detection.mp4: people walk in one at a time with empty stretches between;
with the default settings every appearance must become exactly one event and the empty
stretches none, although two of the gaps are shorter than `end_after_seconds` (events follow
tracks: tests/test_events_per_track.py). The appearance times below were read off the frames
(see also the empty/walking stretches in test_motion.py).
A night/noise case made from the same footage (dark, grainy, flickering, lights switched on)
must raise no event where no person is, while the same treatment of a stretch with a person
still raises one (so the night case cannot pass by detecting nothing at all).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from edge_agent.config.schema import DetectConfig
from edge_agent.detectors.loader import load_detector
from edge_agent.offline import detect_video
from edge_agent.testvideo import encode_h264
from models.registry import install_model
from tests.conftest import SHARED, SHARED_VIDEO, agent_cmd

# (first, last) second in which a person is in view.
APPEARANCES = [(6.5, 19.0), (23.0, 44.0), (51.0, 69.0), (74.5, 86.0), (92.5, 118.5), (124.0, 135.5)]
SETTINGS = DetectConfig()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    install_model("yolox-nano", directory, str(SHARED / "models" / "yolox_nano.onnx"))
    install_model("fastestdet", directory, str(SHARED / "models" / "FastestDet.onnx"))
    return directory


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.extend(line for line in text.splitlines() if line)
        return len(text)

    def flush(self) -> None:
        pass

    def json(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines]


def events(video: Path, model: str, models_dir: Path, settings: DetectConfig = SETTINGS) -> list[dict[str, object]]:
    out = Lines()
    detector = load_detector(model, models_dir, settings.threshold, threads=1)
    detect_video(video, detector, settings, out, events=True)  # type: ignore[arg-type]
    return out.json()


@pytest.mark.parametrize("model", ["yolox-nano", "fastestdet"])
def test_every_appearance_is_exactly_one_event(model: str, models_dir: Path, footage: Path) -> None:
    found = events(footage, model, models_dir)
    assert len(found) == len(APPEARANCES), found
    for event, (first, last) in zip(found, APPEARANCES, strict=True):
        start, end = float(event["start"]), float(event["end"])  # type: ignore[arg-type]
        # The event starts within 1 s of the person's arrival and ends within 2 s of them leaving.
        assert first - 1.0 <= start <= first + 1.0, (event, first)
        assert last - 2.0 <= end <= last + 2.0, (event, last)
        assert event["label"] == "person" and float(event["max_score"]) > 0.6  # type: ignore[arg-type]


def test_crowd_all_the_time_is_one_long_event(models_dir: Path) -> None:
    found = events(SHARED_VIDEO / "vtest.avi", "yolox-nano", models_dir)
    assert len(found) == 1
    assert float(found[0]["start"]) <= 2.0 and float(found[0]["end"]) > 78.0  # type: ignore[arg-type]
    assert int(found[0]["persons"]) >= 5  # type: ignore[call-overload]


def _frames(video: Path, start: float, end: float) -> list[np.ndarray]:
    out = []
    with av.open(str(video)) as c:
        for frame in c.decode(video=0):
            t = float(frame.pts * frame.time_base)
            if start <= t < end:
                out.append(frame.to_ndarray(format="bgr24"))
    return out


def _night(frames: list[np.ndarray], seconds: float, seed: int) -> Iterator[np.ndarray]:
    """Ping-pong the frames for `seconds` at 10 fps, dark and grainy, flickering, then lights on."""
    rng = np.random.default_rng(seed)
    cycle = frames + frames[::-1]
    gain = 0.3
    for i in range(int(seconds * 10)):
        if i % 20 == 0:
            gain = 0.3 * rng.uniform(0.8, 1.2)  # flicker: a failing street lamp, IR LEDs pulsing
        if i >= seconds * 10 / 2:
            gain = 0.9  # lights switched on half way
        img = cycle[i % len(cycle)].astype(np.float32) * gain
        img += rng.normal(0, 7, img.shape[:2])[..., None]  # sensor noise, same on all channels
        yield np.clip(img, 0, 255).astype(np.uint8)


def _encode(frames: Iterator[np.ndarray], path: Path) -> Path:
    return encode_h264(frames, path, fps=10, width=768, height=432, gop=20, crf=30)


@pytest.mark.parametrize("model", ["yolox-nano", "fastestdet", "hog-people"])
def test_night_noise_and_flicker_raise_no_event(model: str, models_dir: Path, footage: Path, tmp_path: Path) -> None:
    empty = _frames(footage, 1.0, 4.8)  # the empty room
    night = _encode(_night(empty, 40, seed=1), tmp_path / "night-empty.mp4")
    assert events(night, model, models_dir) == []


def test_night_treatment_still_shows_a_person(models_dir: Path, footage: Path, tmp_path: Path) -> None:
    person = _frames(footage, 24.0, 30.0)  # someone standing at the table
    night = _encode(_night(person, 30, seed=2), tmp_path / "night-person.mp4")
    assert len(events(night, "yolox-nano", models_dir)) >= 1


def test_detect_command_prints_frames_and_images(models_dir: Path, footage: Path) -> None:
    base = ["detect", "--model", "yolox-nano", "--models-dir", str(models_dir)]
    image = subprocess.run(
        agent_cmd(*base, str(SHARED / "data" / "images" / "astronaut.png")), capture_output=True, text=True, check=True
    )
    (line,) = [json.loads(x) for x in image.stdout.splitlines()]
    assert line["frame"] == 0 and line["detections"][0]["label"] == "person"
    x1, y1, x2, y2 = line["detections"][0]["box"]
    assert x1 < 60 and y1 < 60 and x2 > 320 and y2 > 450  # the astronaut fills the left of the picture
    frames = subprocess.run(
        agent_cmd(*base, "--fps", "1", "--full-frame", str(footage)), capture_output=True, text=True, check=True
    )
    rows = [json.loads(x) for x in frames.stdout.splitlines()]
    assert len(rows) == pytest.approx(140, abs=2)
    assert [r["t"] for r in rows[:3]] == [0.0, 1.0, 2.0]
    at_table = rows[10]["detections"]  # t = 10 s: the first person stands at the table
    assert len(at_table) == 1 and at_table[0]["box"][2] > 450  # boxes are in the file's 768-px pixels
    assert rows[2]["detections"] == []  # t = 2 s: nobody
    missing = subprocess.run(agent_cmd(*base, "/nonexistent.mp4"), capture_output=True, text=True)
    assert missing.returncode == 1 and "no such file" in missing.stderr
    not_installed = subprocess.run(
        agent_cmd("detect", "--model", "yolox-nano", "--models-dir", "/nonexistent", str(footage)),
        capture_output=True,
        text=True,
    )
    assert not_installed.returncode == 1 and "models install yolox-nano" in not_installed.stderr
