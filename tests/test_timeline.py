"""A camera's timeline, end to end: a real `diaolou-hub run`, Mosquitto and an agent recording a
file camera. The hub asks the box a day at a time (`timeline` command) and adds the person events
it holds; a camera the caller may not see is 404, a window that is not one 422, and with the box
offline the events still come with the reason the recordings do not. The box's compaction keeps a
badly fragmented day inside one MQTT message."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract import MAX_PAYLOAD_BYTES, Command, encode
from contract.timeline import MAX_TIMELINE_ITEMS, TimelineRequest, TimelineResult
from edge_agent.agent import Agent
from edge_agent.comms import storage_commands
from edge_agent.config import parse_config
from edge_agent.record.index import SegmentIndex
from edge_agent.record.segment import Segment
from hub.store import connect
from tests.conftest import wait_for
from tests.support.brokers import Broker
from tests.test_clip_job import agent_config
from tests.test_hub import WAIT, HubProcess, hub_config, write_config
from tests.test_web_api import PASSWORD, make_hub_data

CAMERA = "lanxi.shop-1.door"


def timeline(base: str, token: str, camera: str, start: Any, end: Any) -> httpx.Response:
    return httpx.get(
        f"{base}/api/v1/cameras/{camera}/timeline",
        params={"start": start, "end": end},
        headers={"Authorization": f"Bearer {token}"},
        timeout=WAIT,
    )


def test_the_timeline_comes_from_the_box_with_the_hubs_person_events(
    mosquitto: Broker, tmp_path: Path, h264_file: Path
) -> None:
    config = hub_config(tmp_path, mosquitto.url(), mosquitto.protocol)
    make_hub_data(config.data_dir)  # police1 sees site lanxi, owner2 only lanxi.shop-2.door
    hub = HubProcess(write_config(tmp_path, config), tmp_path / "hub.log").start()
    agent = Agent(parse_config(agent_config(tmp_path, mosquitto, None, None, h264_file)))
    base = f"http://{config.listen}"
    running = True
    try:
        assert wait_for(lambda: "web UI and API on" in hub.log_path.read_text(), WAIT)

        def login(user: str) -> str:
            answer = httpx.post(f"{base}/api/v1/auth/login", json={"username": user, "password": PASSWORD})
            return str(answer.json()["token"])

        police, owner2 = login("police1"), login("owner2")
        agent.start()
        assert agent.link is not None and agent.link.wait_connected(WAIT)
        assert wait_for(lambda: len(agent.index.segments("door", 0, time.time() + 60)) >= 3, WAIT)
        segments = agent.index.segments("door", 0, time.time() + 60)
        # A person event in hub.db, as ingest stores one, inside the recorded stretch.
        person = segments[1].start + 0.5
        conn = connect(config.db_path)
        with conn:
            conn.execute(
                'INSERT INTO events (id, phase, seq, site, device, camera, kind, time, "end", test, received) '
                "VALUES ('01JPERSON0000000000000000A', 'new', 0, 'lanxi', 'shop-1', 'door', 'person', ?, NULL, 0, ?)",
                (person, time.time()),
            )
        conn.close()

        # Two days back to now: two commands to the box, joined into one answer.
        now = time.time()
        answer = timeline(base, police, CAMERA, now - 2 * 86_400, now)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["recording_known"] and body["recording_error"] is None
        first = body["spans"][0]
        assert abs(first["start"] - segments[0].start) < 0.01, (first, segments[0])
        assert first["end"] >= segments[2].end - 0.01
        assert body["gaps"][0] == {
            "start": now - 2 * 86_400,
            "end": first["start"],
            "reason": "no recording",
            "problem": None,
        }
        assert {p["id"]: p["start"] for p in body["persons"]}["01JPERSON0000000000000000A"] == person

        # ISO times work as well as epoch seconds.
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - 3600))
        assert timeline(base, police, CAMERA, iso, now).status_code == 200

        # Least privilege and bad input, each with a reason.
        assert timeline(base, owner2, CAMERA, now - 3600, now).status_code == 404
        assert timeline(base, police, "lanxi.shop-1.nope", now - 3600, now).status_code == 404
        backwards = timeline(base, police, CAMERA, now, now - 3600)
        assert backwards.status_code == 422 and "end must be after its start" in backwards.text
        too_long = timeline(base, police, CAMERA, now - 9 * 86_400, now)
        assert too_long.status_code == 422 and "at most 7 days" in too_long.text
        garbage = timeline(base, police, CAMERA, "yesterday", now)
        assert garbage.status_code == 422 and "yesterday" in garbage.text
        # The box goes away: the events still come, with why the recordings do not.
        agent.shutdown()
        running = False
        assert wait_for(lambda: "offline" in str(timeline(base, police, CAMERA, now - 3600, now).json()), WAIT)
        offline = timeline(base, police, CAMERA, now - 3600, now).json()
        assert not offline["recording_known"] and offline["spans"] == []
        assert "shop-1 is offline" in offline["recording_error"]
        assert person in [p["start"] for p in offline["persons"]]
    finally:
        if running:
            agent.shutdown()
        assert hub.terminate() == 0


def test_a_fragmented_day_is_merged_to_fit_one_message(tmp_path: Path) -> None:
    """A camera that dropped out every few seconds all day: 8,000 segments with gaps between."""
    index = SegmentIndex(tmp_path)
    day = 1_790_000_000.0
    for n in range(8000):
        start = day + n * 10.0
        index.add(Segment("door", start, start + 6.0, f"door/{n}.mp4", 1000, "h264", 640, 360, 1, motion=0.5))
    index.flush()
    command = Command(id=uuid.uuid4().hex, time=day, args={"camera": "door", "start": day, "end": day + 86_400})
    reply = storage_commands.answer(index, ["door"], command, day + 86_400)
    assert reply.ok and len(encode(reply)) <= MAX_PAYLOAD_BYTES
    result = TimelineResult.model_validate(reply.result)
    assert result.merged_under >= 4.0 and 0 < len(result.spans) <= MAX_TIMELINE_ITEMS
    assert result.spans[0].start == day and result.spans[-1].end == day + 7999 * 10.0 + 6.0
    # A day too quiet to need it is exact.
    quiet = storage_commands.timeline_result(index, TimelineRequest(camera="door", start=day, end=day + 100))
    assert quiet.merged_under == 0 and len(quiet.spans) == 10 and quiet.gaps[0].start == day + 6.0


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"camera": "till", "start": 1_790_000_000.0, "end": 1_790_000_100.0}, "unknown camera 'till'"),
        ({"camera": "door", "start": 1_790_000_100.0, "end": 1_790_000_000.0}, "end must be after its start"),
        ({"camera": "door", "start": 1_790_000_000.0, "end": 1_790_200_000.0}, "at most a day"),
        ({"camera": "door", "start": "x", "end": 1_790_000_000.0}, "bad timeline request"),
    ],
)
def test_the_box_refuses_a_bad_timeline_request(tmp_path: Path, args: dict[str, Any], error: str) -> None:
    command = Command(id="01JTIMELINE000000000000001", time=1_790_000_000.0, args=args)
    reply = storage_commands.answer(SegmentIndex(tmp_path), ["door"], command, 1_790_000_000.0)
    assert not reply.ok and reply.error is not None and error in reply.error
