"""Tracker, zones, arming schedules and the person-event lifecycle, on hand-made detections."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from edge_agent.config.schema import DetectConfig
from edge_agent.detectors.base import Box, Detection
from edge_agent.events.person import EventBuilder, EventChange
from edge_agent.track.follow import FOLLOW_SECONDS, plan_detection
from edge_agent.track.tracker import Tracker
from edge_agent.track.zones import ArmingSchedule, Polygon

FRAME = np.zeros((360, 640, 3), np.uint8)


def person(x: float, y: float, score: float = 0.9, w: float = 40, h: float = 100) -> Detection:
    return Detection(Box(x, y, x + w, y + h), score, "person")


def test_ids_follow_moving_people_and_cross_without_swapping() -> None:
    tracker = Tracker(min_score=0.6, score_window=5, min_hits=3)
    ids_a, ids_b = set(), set()
    for i in range(20):
        t = i * 0.2
        # A walks right, B walks left; they pass each other at i = 10.
        update = tracker.update([person(50 + 25 * i, 100), person(550 - 25 * i, 120)], t)
        for track, det in update.matched:
            (ids_a if det.box.y1 == 100 else ids_b).add(track.id)
    assert len(ids_a) == 1 and len(ids_b) == 1 and ids_a != ids_b


def test_one_frame_false_positive_never_becomes_a_person() -> None:
    tracker = Tracker(min_score=0.6, score_window=5, min_hits=3)
    confirmed: list = []
    for i in range(10):
        dets = [person(300, 100, 0.95)] if i == 4 else []
        confirmed += tracker.update(dets, i * 0.2).confirmed
    assert confirmed == []
    # Low scores for a long time: the median keeps it out, too.
    for i in range(10, 30):
        confirmed += tracker.update([person(100, 100, 0.5)], i * 0.2).confirmed
    assert confirmed == []
    # A real person: confirmed after min_hits with a high median.
    hits_when_confirmed = []
    for i in range(30, 34):
        new = tracker.update([person(400, 100, 0.8)], i * 0.2).confirmed
        hits_when_confirmed += [tr.hits for tr in new]
        confirmed += new
    assert len(confirmed) == 1 and hits_when_confirmed == [3]


def test_tracks_only_miss_where_the_detector_looked() -> None:
    tracker = Tracker(min_score=0.6, score_window=5, min_hits=1, max_misses=2)
    tracker.update([person(100, 100)], 0.0)
    # Many frames where the detector looked elsewhere: the still person is kept.
    for i in range(1, 20):
        tracker.update([], i * 0.2, checked=[Box(400, 0, 640, 360)])
    assert len(tracker.tracks) == 1
    removed = []
    for i in range(20, 24):
        removed += tracker.update([], i * 0.2, checked=[Box(0, 0, 640, 360)]).removed
    assert len(removed) == 1 and tracker.tracks == []


def test_polygon_zone_and_arming_schedule() -> None:
    door = Polygon([[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]])
    assert door.contains(500, 300, 640, 360) and not door.contains(100, 300, 640, 360)
    assert door.mask(640, 360)[300, 500] == 255
    night = ArmingSchedule(["22:00-06:00"], "Asia/Shanghai")
    tz = ZoneInfo("Asia/Shanghai")

    def at(hour: int, minute: int = 0) -> float:
        return datetime(2026, 11, 28, hour, minute, tzinfo=tz).timestamp()

    assert night.armed(at(23)) and night.armed(at(2)) and night.armed(at(22))
    assert not night.armed(at(6)) and not night.armed(at(13)) and not night.armed(at(21, 59))
    assert ArmingSchedule(["always"], "UTC").armed(at(13))
    lunch = ArmingSchedule(["12:00-13:30", "20:00-24:00"], "Asia/Shanghai")
    assert lunch.armed(at(13, 10)) and lunch.armed(at(23, 59)) and not lunch.armed(at(14))


def run_changes(settings: DetectConfig, frames: list[list[Detection]], fps: float = 5.0) -> list[EventChange]:
    """The pipeline's tracker and event steps, the detector looking at the whole frame."""
    tracker = Tracker(settings.min_score, settings.score_window, settings.min_hits)
    ids = iter(f"E{i}" for i in range(100))
    builder = EventBuilder("cam", settings, "UTC", "test-model", lambda: (640, 360), new_id=lambda t: next(ids))
    changes = []
    for i, dets in enumerate(frames):
        t = i / fps
        update = tracker.update(dets, t)
        tracker.expire(t, settings.end_after_seconds)
        tracker.drop_out_of_view(t, 640, 360)
        changes += builder.process(t, FRAME, update, tracker.tracks)
    changes += builder.finish()
    return changes


def run_events(settings: DetectConfig, frames: list[list[Detection]], fps: float = 5.0) -> list[tuple[str, str]]:
    return [(c.phase, c.event.id) for c in run_changes(settings, frames, fps)]


def test_a_person_who_stays_raises_one_event_and_a_second_person_joins_it() -> None:
    settings = DetectConfig(end_after_seconds=2)
    frames = [[person(100 + i, 100)] for i in range(50)]  # 10 s of one person
    frames += [[person(150, 100), person(400, 100, 0.8)] for _ in range(10)]  # a second joins
    frames += [[] for _ in range(20)]  # both leave; 4 s of nothing
    frames += [[person(300, 150)] for _ in range(10)]  # someone new, later
    changes = run_events(settings, frames)
    assert [p for p, _ in changes if p != "update"] == ["new", "end", "new", "end"]
    assert {e for p, e in changes if p == "new"} == {"E0", "E1"}
    assert ("update", "E0") in changes  # the second person joined the open event


def test_zones_need_min_frames_inside_and_disarmed_hours_stay_quiet() -> None:
    zone = {"door": {"polygon": [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]], "min_frames": 3}}
    settings = DetectConfig.model_validate({"zones": zone, "end_after_seconds": 1})
    outside = [[person(50, 100)] for _ in range(30)]
    assert run_events(settings, outside) == []
    inside = [[person(500, 100)] for _ in range(30)]
    assert [p for p, _ in run_events(settings, inside)] == ["new", "end"]
    night_only = DetectConfig.model_validate({"armed": ["22:00-06:00"]})
    # Frames at t = 0 .. 6 s after the epoch: 00:00 UTC, armed in UTC; build with a day-time zone instead.
    tracker = Tracker(0.6, 5, 3)
    builder = EventBuilder("cam", night_only, "Asia/Shanghai", "m", lambda: (640, 360))  # 08:00 local
    changes = []
    for i in range(30):
        update = tracker.update([person(100, 100)], i / 5)
        changes += builder.process(i / 5, FRAME, update, tracker.tracks)
    assert changes == []


def test_someone_else_after_the_last_one_left_is_a_new_event_within_the_end_timeout() -> None:
    settings = DetectConfig()  # end_after_seconds 5
    gone_for = 1.6  # s: far below end_after_seconds
    leaves = [[person(300 + 25 * i, 100)] for i in range(14)]  # walks out at the right edge
    nobody: list[list[Detection]] = [[] for _ in range(round(gone_for * 5))]
    arrives = [[person(60 + 5 * i, 220)] for i in range(15)]  # someone walks in at the bottom left
    changes = run_changes(settings, leaves + nobody + arrives)
    assert [(c.phase, c.event.id) for c in changes if c.phase != "update"] == [
        ("new", "E0"),
        ("end", "E0"),
        ("new", "E1"),
        ("end", "E1"),
    ]
    first_end = next(c.event for c in changes if c.phase == "end")
    assert first_end.end == pytest.approx(13 / 5)  # when the first person was last seen
    assert len(first_end.track_ids) == 1


def test_the_same_person_lost_for_a_moment_in_place_stays_one_event() -> None:
    settings = DetectConfig()
    here = [[person(300, 100)] for _ in range(15)]
    hidden: list[list[Detection]] = [[] for _ in range(8)]  # 1.6 s of misses: the track is dropped
    changes = run_changes(settings, here + hidden + here)
    assert [c.phase for c in changes if c.phase != "update"] == ["new", "end"]
    (event,) = {id(c.event): c.event for c in changes}.values()
    assert len(event.track_ids) == 1 and len(event.members) == 2  # one person, two tracks
    assert event.end == pytest.approx((15 + 8 + 15 - 1) / 5)


def test_a_person_who_stays_raises_no_second_alert() -> None:
    settings = DetectConfig()
    stays = [[person(300 + (i % 3), 100, 0.7 + 0.2 * (i % 2))] for i in range(300)]  # 60 s, jittery
    changes = run_changes(settings, stays)
    assert [c.phase for c in changes].count("new") == 1
    assert [c.phase for c in changes][-1] == "end"


def test_someone_else_a_moment_after_the_last_one_left_waits_for_the_tracker_then_is_new() -> None:
    settings = DetectConfig()
    # Walks out through a door in the middle of the picture: the track is missed, not out of view,
    # and the tracker drops it only after 5 misses (1 s); someone else walks in 0.4 s later.
    leaves = [[person(200 + 30 * i, 100)] for i in range(8)]
    arrives = [[person(60 + 5 * i, 220)] for i in range(15)]
    changes = run_changes(settings, [*leaves, [], *arrives])
    assert [(c.phase, c.event.id) for c in changes if c.phase != "update"] == [
        ("new", "E0"),
        ("end", "E0"),
        ("new", "E1"),
        ("end", "E1"),
    ]
    second = next(c.event for c in changes if c.event.id == "E1")
    assert second.start == pytest.approx(9 / 5)  # from their first detection, although decided later


def test_a_part_of_the_same_person_found_in_place_is_not_someone_new() -> None:
    settings = DetectConfig()
    body = [[person(300, 100, w=60, h=180)] for _ in range(15)]
    hidden: list[list[Detection]] = [[] for _ in range(8)]  # the body track is dropped
    head = [[Detection(Box(310, 100, 350, 150), 0.8, "person")] for _ in range(10)]  # only the head shows
    changes = run_changes(settings, body + hidden + head)
    assert [c.phase for c in changes if c.phase != "update"] == ["new", "end"]
    assert len(changes[-1].event.track_ids) == 1


def test_a_confirmed_walker_is_followed_on_motion_until_it_spills_out_or_the_safety_net() -> None:
    tracker = Tracker(min_score=0.6, score_window=5, min_hits=3)
    for i in range(3):  # walks right at 50 px/s, confirmed at the third detection
        tracker.update([person(100 + 10 * i, 100, w=60, h=160)], i * 0.2)
    (track,) = tracker.tracks
    assert track.confirmed
    t = 0.6  # one frame after the last detection: the prediction is at x 130
    around = Box(122, 95, 198, 265)  # the walker's motion, a little larger than they are
    plan = plan_detection(tracker.tracks, [around], t, recheck_seconds=2.0)
    assert plan.followed == [track] and plan.tracked == [] and plan.motion == []
    spilling = Box(122, 95, 260, 265)  # they broke into a run, or someone is beside them
    plan = plan_detection(tracker.tracks, [spilling], t, recheck_seconds=2.0)
    assert plan.followed == [track] and plan.motion == [spilling]
    elsewhere = Box(500, 100, 560, 260)  # someone new
    plan = plan_detection(tracker.tracks, [around, elsewhere], t, recheck_seconds=2.0)
    assert plan.motion == [elsewhere]
    plan = plan_detection(tracker.tracks, [around], 0.4 + FOLLOW_SECONDS, recheck_seconds=2.0)
    assert plan.followed == [] and len(plan.tracked) == 1  # the safety net: looked at again
    plan = plan_detection(tracker.tracks, [], 0.6, recheck_seconds=2.0)
    assert plan.followed == [] and plan.tracked == []  # no motion, prediction not drifted: standing
    plan = plan_detection(tracker.tracks, [], 1.6, recheck_seconds=2.0)
    assert len(plan.tracked) == 1  # no motion where the prediction has drifted to: stopped or turned
    plan = plan_detection(tracker.tracks, [], 0.4 + 2.0, recheck_seconds=2.0)
    assert len(plan.tracked) == 1  # re-checked every recheck_seconds
