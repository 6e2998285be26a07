"""Arming schedules: when a user wants to hear about a camera, in local time of the camera's site.

The same idea as the agent's `ArmingSchedule` (edge_agent/track/zones.py), re-stated here because
the hub never imports the agent: local-time segments such as 20:00-07:00, a segment may cross
midnight, several per day. A segment may also name weekdays (1 = Monday ... 7 = Sunday); a
segment that crosses midnight belongs to the day it starts on, so "Friday 20:00-07:00" covers
Saturday morning too. A start equal to the end means the whole day from that time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.notify.models import ArmingSegment

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


def parse_clock(text: str) -> int:
    """Minutes after midnight of "HH:MM" (00:00 to 24:00)."""
    if not _HHMM.match(text):
        raise ValueError(f"{text!r} is not a time of day HH:MM")
    hours, minutes = (int(p) for p in text.split(":"))
    return hours * 60 + minutes


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(f"unknown time zone {name!r}: an IANA name such as Asia/Shanghai") from None


def armed(segments: Sequence[ArmingSegment], time_zone: str, t: float) -> bool:
    """Whether epoch time `t` falls in one of `segments`, read in `time_zone`."""
    local = datetime.fromtimestamp(t, zone(time_zone))
    now = local.hour * 60 + local.minute + local.second / 60
    today = local.isoweekday()
    yesterday = (local - timedelta(days=1)).isoweekday()
    for segment in segments:
        start, end = parse_clock(segment.start), parse_clock(segment.end)
        days = set(segment.days)
        if start < end:
            if today in days and start <= now < end:
                return True
        elif (today in days and now >= start) or (yesterday in days and now < end):
            return True  # crosses midnight (or start == end: a whole day from `start`)
    return False


def local_text(t: float, time_zone: str) -> str:
    """ "2026-12-04 21:03:15" in `time_zone`, for a message a person reads."""
    return datetime.fromtimestamp(t, zone(time_zone)).strftime("%Y-%m-%d %H:%M:%S")


def describe(segments: Sequence[ArmingSegment]) -> str:
    """ "20:00-07:00, 12:00-13:30": how the page shows a schedule."""
    return ", ".join(f"{s.start}-{s.end}" for s in segments)
