"""Timestamps: camera clocks are never trusted; the box clock may be unset or step."""

from __future__ import annotations

import random
from fractions import Fraction

from edge_agent.capture.backoff import Backoff
from edge_agent.capture.timestamps import TimestampSanitizer
from edge_agent.clock import EARLIEST_PLAUSIBLE, WallClock

TB = Fraction(1, 90000)  # RTSP video clock
STEP = 6000  # 15 fps


def test_missing_timestamps_continue_at_the_nominal_rate() -> None:
    s = TimestampSanitizer(TB, 15)
    assert s(None, None).dts == 0
    assert s(None, None).dts == STEP
    assert s(3 * STEP, None).dts == 3 * STEP  # pts used for dts
    assert s(None, 4 * STEP).pts == 4 * STEP


def test_backwards_and_wrapping_clocks_are_spliced_forward() -> None:
    s = TimestampSanitizer(TB, 15)
    out = [s(t, t).dts for t in (0, STEP, 2 * STEP)]
    out.append(s(5, 5).dts)  # camera restarted its RTP clock
    out.append(s(5 + STEP, 5 + STEP).dts)
    assert out == [0, STEP, 2 * STEP, 3 * STEP, 4 * STEP]
    assert s.repairs == 1


def test_a_wild_forward_jump_is_bounded_by_the_box_clock() -> None:
    s = TimestampSanitizer(TB, 15)
    s(0, 0, None)
    s(STEP, STEP, 1 / 15)
    jumped = s(STEP + 90000 * 3600, STEP + 90000 * 3600, 1 / 15)  # camera clock jumps an hour
    assert jumped.dts == 2 * STEP
    # A real 20 s freeze of the stream is kept as 20 s.
    frozen = s(STEP + 90000 * 3600 + 20 * 90000, STEP + 90000 * 3600 + 20 * 90000, 20.0)
    assert frozen.dts == 2 * STEP + 20 * 90000


def test_random_garbage_never_goes_backwards() -> None:
    rng = random.Random(7)
    s = TimestampSanitizer(TB, 15)
    last = -1
    for _ in range(5000):
        choice = rng.random()
        pts = None if choice < 0.1 else rng.randrange(-(2**40), 2**40)
        dts = None if choice < 0.2 else pts
        out = s(pts, dts, rng.random())
        assert out.dts > last and out.pts >= out.dts and out.duration > 0
        last = out.dts


class FakeTime:
    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def test_clock_follows_a_plausible_system_clock_and_its_steps() -> None:
    t = FakeTime(EARLIEST_PLAUSIBLE + 1e7)
    clock = WallClock(system=lambda: t.wall, monotonic=lambda: t.mono)
    assert clock.now() == t.wall
    t.advance(5)
    assert clock.now() == t.wall
    t.wall += 3600  # NTP steps the clock forward
    assert clock.now() == t.wall and clock.steps == 1


def test_unset_clock_continues_from_the_last_recording() -> None:
    last_recorded = EARLIEST_PLAUSIBLE + 5e6
    t = FakeTime(86400.0)  # booted in 1970: no RTC, no NTP yet
    clock = WallClock(floor=last_recorded, system=lambda: t.wall, monotonic=lambda: t.mono, synchronized=lambda: False)
    assert clock.now() == last_recorded
    t.advance(10)
    assert clock.now() == last_recorded + 10  # monotonic time on from the floor, never 1970
    t.wall = last_recorded + 7200  # NTP answers
    assert clock.now() == last_recorded + 7200


def test_clock_never_goes_behind_what_was_recorded_unless_ntp_vouches() -> None:
    t = FakeTime(EARLIEST_PLAUSIBLE + 1e7)
    synced = {"ok": False}
    clock = WallClock(system=lambda: t.wall, monotonic=lambda: t.mono, synchronized=lambda: synced["ok"])
    clock.raise_floor(t.wall + 1)
    t.wall -= 30  # clock stepped back 30 s, nobody vouches for it
    assert clock.now() >= t.wall + 30
    synced["ok"] = True  # NTP synchronised: the box's clock had been 30 s ahead
    t.advance(1)
    assert clock.now() == t.wall


def test_backoff_is_capped_exponential_with_jitter() -> None:
    b = Backoff(1, 30, random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    assert 0.8 <= delays[0] <= 1.2
    assert all(d <= 30 for d in delays) and delays[-1] >= 24
    assert delays[3] > delays[1]
    b.reset()
    assert b.next_delay() <= 1.2
