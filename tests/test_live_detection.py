"""The live agent: recording and analysis side by side, person events with snapshots saved,
the recorder's motion/persons columns filled, and the models command line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.events.local import PersonDetail
from edge_agent.events.store import EventStore
from edge_agent.record.index import SegmentIndex
from models.registry import install_model
from tests.conftest import SHARED, agent_cmd, wait_for


def test_agent_raises_person_events_while_recording(tmp_path: Path, footage: Path) -> None:
    models = tmp_path / "models"
    install_model("yolox-nano", models, str(SHARED / "models" / "yolox_nano.onnx"))
    config = parse_config(
        f"storage: {{root: {tmp_path / 'rec'}, index_flush_seconds: 1}}\n"
        f"models_dir: {models}\n"
        f"cameras:\n  shop: {{source: {footage}, record: {{segment_seconds: 4}}, detect: {{end_after_seconds: 2}}}}\n"
    )
    agent = Agent(config)
    agent.start()
    try:
        analysis = agent.analysis["shop"]
        # The first person walks in at 6.5 s and leaves at 19 s of the looped file.
        assert wait_for(lambda: analysis.status.events >= 1, timeout=60), analysis.status
        assert wait_for(
            lambda: any(e.message.phase == "end" for e in agent.events.list(camera="shop", kind="person")),
            timeout=60,
        )
    finally:
        agent.shutdown()
    assert analysis.status.last_error is None
    # Far fewer detector runs than analysed frames: motion gates the detector.
    assert analysis.status.detector_runs < analysis.status.frames
    stored = EventStore(tmp_path / "rec").list(camera="shop", kind="person")  # reopened: survives the process
    message = next(e.message for e in stored if e.message.phase == "end")
    detail = PersonDetail.model_validate(message.detail)
    assert detail.label == "person" and detail.max_score > 0.6 and detail.model == "yolox-nano"
    assert message.end is not None and 8 <= message.end - message.time <= 16  # the first visit lasts about 12.5 s
    assert detail.clip is not None and (detail.clip.start, detail.clip.end) == (message.time - 5, message.end + 5)
    assert message.snapshot is not None and message.snapshot.crop is not None
    full = cv2.imread(str(tmp_path / "rec" / message.snapshot.path))
    crop = cv2.imread(str(tmp_path / "rec" / message.snapshot.crop))
    assert full is not None and full.shape[:2] == (360, 640)
    assert crop is not None and crop.shape[0] > 150  # a standing person, not a sliver
    # Segments that saw the visit carry motion and a person; the empty start of the file does not.
    segments = SegmentIndex(tmp_path / "rec").segments("shop", 0, 4e9)
    assert any((s.persons or 0) >= 1 and (s.motion or 0) > 0.2 for s in segments)
    first = segments[0]
    assert first.persons == 0


def test_models_command_line(tmp_path: Path) -> None:
    models = tmp_path / "models"
    listed = subprocess.run(
        agent_cmd("models", "list", "--models-dir", str(models)), capture_output=True, text=True, check=True
    ).stdout
    assert "hog-people" in listed and "built-in" in listed
    assert "yolox-nano   yolox       not installed" in listed
    tampered = tmp_path / "tampered.onnx"
    tampered.write_bytes((SHARED / "models" / "yolox_nano.onnx").read_bytes()[:-1] + b"\x00")
    bad = subprocess.run(
        agent_cmd("models", "install", "yolox-nano", "--from", str(tampered), "--models-dir", str(models)),
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "SHA-256" in bad.stderr.upper().replace("SHA256", "SHA-256")
    assert not (models / "yolox-nano.onnx").exists()
    good = subprocess.run(
        agent_cmd(
            "models",
            "install",
            "yolox-nano",
            "--from",
            str(SHARED / "models" / "yolox_nano.onnx"),
            "--models-dir",
            str(models),
        ),
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    listed = subprocess.run(
        agent_cmd("models", "list", "--models-dir", str(models)), capture_output=True, text=True, check=True
    ).stdout
    assert "yolox-nano   yolox       installed" in listed
    unknown = subprocess.run(
        agent_cmd("models", "install", "yolo-huge", "--models-dir", str(models)), capture_output=True, text=True
    )
    assert unknown.returncode == 1 and "unknown model 'yolo-huge'" in unknown.stderr
