"""A camera at a gate door: the picture of who swiped with every decision and alarm, and
tailgating counted on the door line, on the real footage (one-by-one-person-detection.mp4: six
visitors walk in from the left one after another, stand at a table and leave to the right).

The door line is drawn down the middle of the picture (x = 0.5), inside to the right: the
visitors who walk in from the left edge cross it about 0.5 s after they appear (at 6.6, 23.2,
51.2, 76.2 and 124.2 s); the one who appears already past it (92 s) does not count. The door is
held open for 30 s after the 3 s pulse, so one grant at 6 s covers the second visitor too.

The frames go through the camera's real analysis (AnalysisWorker.handle: motion, yolox-nano,
tracker) as fast as they decode, with the wall clock of each frame its time in the file, and
the door's controller is driven at those times: no sleeps, the same result on a slow machine.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract import Event
from contract.messages import MAX_PAYLOAD_BYTES, check_snapshot
from edge_agent.agent import Agent
from edge_agent.analysis import ActivityLedger, AnalysisWorker
from edge_agent.capture.frames import iter_frames
from edge_agent.capture.sources import StreamSpec
from edge_agent.clock import WallClock
from edge_agent.config.schema import AgentConfig
from edge_agent.detectors.base import Box
from edge_agent.detectors.loader import load_detector
from edge_agent.events.store import EventStore
from edge_agent.gate.credential import encode_wiegand, parse_wiegand
from edge_agent.gate.doorcam import DoorCamera, Grab
from edge_agent.gate.doorline import DoorLine, TailgateCounter, Tailgating
from edge_agent.gate.loop import GateDoors
from edge_agent.gate.service import Gate
from edge_agent.gate.store import put_credential, put_holder
from edge_agent.pipeline import CameraAnalyzer
from edge_agent.track.tracker import Track
from models.registry import install_model
from tests.conftest import SHARED

T = 1_790_000_000.0  # the file's time 0 on the wall clock
CLIP = SHARED / "data" / "video" / "one-by-one-person-detection.mp4"
CARDS = 6  # card numbers 1..6, one per visitor


def config(root: Path, **door: Any) -> AgentConfig:
    raw = {
        "storage": {"root": str(root)},
        "models_dir": str(root / "models"),
        "cameras": {"gatecam": {"source": "rtsp://192.0.2.1/door", "detect": {"model": "yolox-nano"}}},
        "doors": {"b07-east": {"building": "b07", **door}},
    }
    return AgentConfig.model_validate(raw)


DOOR = {
    "camera": "gatecam",
    "tailgating": {"line": [[0.5, 0.0], [0.5, 1.0]], "inside": [0.9, 0.9]},
}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("models")
    install_model("yolox-nano", directory, str(SHARED / "models" / "yolox_nano.onnx"))
    return directory


@pytest.fixture(scope="module")
def footage_frames() -> list[Any]:
    """The clip's analysis frames, decoded once for the module (5 fps, 640 px: the defaults)."""
    spec = StreamSpec("file", str(CLIP), str(CLIP))
    return list(iter_frames(spec, 5.0, 640, decode_threads=0))


class Door:
    """The door b07-east with its camera, everything but the threads that read cards."""

    def __init__(self, root: Path, models_dir: Path) -> None:
        self.config = config(root, **DOOR)
        self.gate = Gate(self.config, create=True)
        for n in range(1, CARDS + 1):
            holder = put_holder(self.gate.db, f"E{n:03d}", f"resident {n}", "b07", room=str(n))
            put_credential(self.gate.db, holder, "wiegand26", 26, 12, n)
        self.events: list[Event] = []
        self.snapshots: dict[str, bytes] = {}
        self.doors = GateDoors(self.config, self.gate.engine, self.events.append, self.snapshots.__setitem__)
        self.controller = self.doors.controllers["b07-east"]
        self.camera = self.doors.cameras["b07-east"]
        self.camera.start()
        cam = self.config.cameras["gatecam"]
        detector = load_detector("yolox-nano", models_dir, cam.detect.threshold, threads=1)
        analyzer = CameraAnalyzer("gatecam", cam.detect, detector, "UTC")
        self.store = EventStore(root, None)
        self.worker = AnalysisWorker(
            "gatecam",
            cam,
            StreamSpec("file", str(CLIP), str(CLIP)),
            analyzer,
            WallClock(),
            self.store,
            root,
            ActivityLedger(),
            threading.Event(),
            self.doors.watchers("gatecam"),
        )

    def play(self, frames: list[Any], swipes: list[float], until: float) -> None:
        """The footage up to `until` s, a card shown at each of `swipes` (s into the file)."""
        pending = sorted(swipes)
        card = 0
        for frame in frames:
            if frame.t > until:
                break
            while pending and pending[0] <= frame.t:
                card += 1
                decision = self.controller.on_card(parse_wiegand(encode_wiegand(26, 12, card)), T + pending.pop(0))
                assert decision.granted, decision
            self.worker.handle(frame, T + frame.t)
            self.controller.tick(T + frame.t)
        assert self.camera.wait_idle(20)

    def tailgating(self) -> list[Event]:
        return [e for e in self.events if e.kind == "door_alarm" and e.detail.get("alarm") == "tailgating"]

    def close(self) -> None:
        self.doors.stop()
        self.store.close()
        self.gate.close()


@pytest.fixture
def door(tmp_path: Path, models_dir: Path) -> Iterator[Door]:
    made = Door(tmp_path, models_dir)
    yield made
    made.close()


def test_one_grant_then_two_people_crossing_raises_tailgating_with_a_picture(
    door: Door, footage_frames: list[Any]
) -> None:
    door.play(footage_frames, swipes=[6.0], until=30.0)
    [alarm] = door.tailgating()
    assert alarm.detail["grants"] == 1 and alarm.detail["persons"] == 2
    assert alarm.detail["door"] == "b07-east" and alarm.detail["building"] == "b07"
    assert T + 22.5 <= alarm.time <= T + 25.0  # when the second visitor crossed (23.2 s)
    assert alarm.camera == "gatecam" and alarm.snapshot is not None
    # Who swiped: the grant carries the camera and its picture, stored and shipped after it.
    [access] = [e for e in door.events if e.kind == "access"]
    assert access.camera == "gatecam" and access.snapshot is not None
    for event in (access, alarm):
        assert event.snapshot is not None
        jpeg = door.snapshots[event.id]
        assert check_snapshot(jpeg) and len(jpeg) <= MAX_PAYLOAD_BYTES
        assert (door.config.storage.root / event.snapshot.path).read_bytes() == jpeg
        assert event.snapshot.path.startswith("snapshots/gatecam/")


def test_one_grant_per_person_raises_nothing_over_the_whole_clip(door: Door, footage_frames: list[Any]) -> None:
    # A card for each visitor as they reach the door, the one who appears past the line included.
    door.play(footage_frames, swipes=[6.0, 22.5, 50.0, 74.0, 92.0, 123.5], until=140.0)
    assert door.tailgating() == []
    access = [e for e in door.events if e.kind == "access"]
    assert len(access) == 6 and all(e.detail["granted"] for e in access)
    assert all(e.id in door.snapshots for e in access)
    assert door.camera.counter is not None


class SlowPicture:
    """A frame whose conversion waits until the test lets it go: encoding held up on purpose."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.started = threading.Event()

    def image_from_another_thread(self) -> np.ndarray:
        self.started.set()
        assert self.go.wait(10)
        return np.full((120, 160, 3), 128, np.uint8)


def test_a_stuck_snapshot_never_holds_up_the_relay_or_the_next_card(tmp_path: Path) -> None:
    cfg = config(tmp_path, camera="gatecam")
    gate = Gate(cfg, create=True)
    holder = put_holder(gate.db, "E001", "李伟", "b07", room="301")
    put_credential(gate.db, holder, "wiegand26", 26, 12, 1)
    events: list[Event] = []
    sent: dict[str, bytes] = {}
    doors = GateDoors(cfg, gate.engine, events.append, sent.__setitem__)
    camera, controller, io = doors.cameras["b07-east"], doors.controllers["b07-east"], doors.io["b07-east"]
    camera.start()
    picture = SlowPicture()
    camera.frame(picture, T)
    card = parse_wiegand(encode_wiegand(26, 12, 1))
    assert controller.on_card(card, T + 0.5).granted
    assert picture.started.wait(10)  # the snapshot thread is stuck in the conversion...
    assert controller.on_card(card, T + 1.0).granted  # ...and the door goes on deciding and releasing
    assert len(io.pulses) == 2 and len(events) == 2  # type: ignore[attr-defined]
    assert sent == {}
    picture.go.set()
    assert camera.wait_idle(10)
    assert set(sent) == {e.id for e in events}
    doors.stop()
    gate.close()


def test_no_picture_when_the_camera_has_none_or_only_a_stale_one(tmp_path: Path) -> None:
    camera = DoorCamera("d", "gatecam", tmp_path, lambda event_id, jpeg: None)
    assert camera.grab(T) is None
    camera.frame(SlowPicture(), T)
    assert isinstance(camera.grab(T + 1.0), Grab)
    assert camera.grab(T + 10.0) is None  # the analysis stalled: a picture of someone else


def test_the_door_line_counts_walks_through_it_inward_only() -> None:
    line = DoorLine((0.5, 0.2), (0.5, 0.8), inside=(0.9, 0.5))
    assert line.crossed_in((0.3, 0.5), (0.7, 0.5))
    assert not line.crossed_in((0.7, 0.5), (0.3, 0.5))  # leaving
    assert not line.crossed_in((0.3, 0.95), (0.7, 0.95))  # beside the door, below the line's end
    assert not line.crossed_in((0.3, 0.5), (0.45, 0.5))  # up to the door, not through


@pytest.mark.parametrize(
    ("door", "words"),
    [
        ({"camera": "lobby"}, "camera 'lobby' is not one of this box's cameras (gatecam)"),
        ({"tailgating": DOOR["tailgating"]}, "`tailgating` needs `camera`"),
        (
            {"camera": "gatecam", "tailgating": {"line": [[0.5, 0.5], [0.51, 0.5]], "inside": [0.5, 0.9]}},
            "draw it across the whole doorway",
        ),
        (
            {"camera": "gatecam", "tailgating": {"line": [[0.1, 0.5], [0.9, 0.5]], "inside": [0.5, 0.5]}},
            "`inside` lies on the door line",
        ),
    ],
)
def test_a_wrong_door_camera_is_refused_with_words_that_name_it(tmp_path: Path, door: Any, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        config(tmp_path, **door)


def test_a_door_camera_needs_its_detection(tmp_path: Path) -> None:
    raw = config(tmp_path).model_dump(mode="json")
    raw["cameras"]["gatecam"]["detect"]["enabled"] = False
    raw["doors"]["b07-east"]["camera"] = "gatecam"
    with pytest.raises(ValueError, match=re.escape("detect.enabled: false; a door camera needs detection on")):
        AgentConfig.model_validate(raw)


def test_a_door_camera_without_its_model_still_lets_residents_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The door camera's detection cannot start (its model is not installed): the agent says so,
    naming the door, and the door decides and releases as before, its events without a picture."""
    raw = config(tmp_path, **DOOR).model_dump(mode="json")
    raw["mqtt"]["enabled"] = False
    raw["cameras"]["gatecam"]["source"] = "rtsp://127.0.0.1:1/door"  # refused at once
    cfg = AgentConfig.model_validate(raw)
    gate = Gate(cfg, create=True)
    put_credential(gate.db, put_holder(gate.db, "E001", "李伟", "b07", room="301"), "wiegand26", 26, 12, 1)
    gate.close()
    agent = Agent(cfg)
    with caplog.at_level("ERROR"):
        agent.start()
    try:
        assert "door b07-east: camera gatecam is not analysed" in caplog.text
        assert agent.doors is not None
        controller, camera = agent.doors.controllers["b07-east"], agent.doors.cameras["b07-east"]
        assert controller.on_card(parse_wiegand(encode_wiegand(26, 12, 1)), time.time()).granted
        assert camera.grab(time.time()) is None and camera.shipped == 0
    finally:
        agent.shutdown()


def walker(track_id: int, x0: float, x1: float, confirmed: bool = True) -> Track:
    """A track whose feet went from x0 to x1 (of a 100 px wide frame), at mid-height."""
    start, now = Box(x0 - 5, 20, x0 + 5, 50), Box(x1 - 5, 20, x1 + 5, 50)
    return Track(track_id, now, 0.0, 0.0, "person", deque([0.9]), confirmed=confirmed, first_box=start)


def test_each_person_beyond_the_grants_of_an_opening_is_one_finding() -> None:
    counter = TailgateCounter(DoorLine((0.5, 0.0), (0.5, 1.0), inside=(0.9, 0.5)))
    counter.grant(T, T + 33)
    assert counter.observe(T + 2, [walker(1, 20, 70)], 100, 100) is None  # the card holder
    assert counter.observe(T + 3, [walker(1, 20, 70)], 100, 100) is None  # counted once
    assert counter.observe(T + 3, [walker(2, 20, 70, confirmed=False)], 100, 100) is None  # not a person yet
    first = counter.observe(T + 4, [walker(2, 20, 70), walker(3, 80, 30)], 100, 100)  # 3 leaves
    assert first == Tailgating(T + 4, grants=1, persons=2)
    assert counter.observe(T + 5, [walker(4, 20, 70)], 100, 100) == Tailgating(T + 5, grants=1, persons=3)
    counter.grant(T + 10, T + 43)  # a card for the next one: no finding
    assert counter.observe(T + 11, [walker(5, 20, 70)], 100, 100) is None
    assert counter.observe(T + 60, [walker(6, 20, 70)], 100, 100) is None  # the door had closed
    counter.grant(T + 100, T + 133)  # a new opening starts from nothing
    assert counter.observe(T + 101, [walker(7, 20, 70)], 100, 100) is None
