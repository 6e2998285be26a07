"""The `timeline` command: what a box has recorded of one camera in a window of at most a day.

The hub sends a Command named `timeline` (topic .../cmd/timeline) whose `args` are a
`TimelineRequest`; the box answers on .../reply with `result` a `TimelineResult` (or ok false and
why: unknown camera, bad window). A reply is one MQTT message (MAX_PAYLOAD_BYTES), so the window is
at most a day and the box merges spans closer than `merged_under` seconds until the lists fit
`MAX_TIMELINE_ITEMS`; the hub asks a day at a time. The hub adds person events from hub.db.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.messages import EpochSeconds, Name, Text

TIMELINE_COMMAND = "timeline"
MAX_TIMELINE_WINDOW_SECONDS = 86_400.0 + 3_600.0  # a day, plus a daylight-saving hour
MAX_TIMELINE_ITEMS = 400  # per list: 3 lists of 400 items of about 45 bytes stay well under 64 KB
GapReason = Literal["no recording", "damaged segment"]


class TimelineRequest(BaseModel):
    """The `args` of a `timeline` command."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    camera: Name = Field(description="The camera's name on the box.")
    start: EpochSeconds = Field(description="Window start, epoch seconds UTC.")
    end: EpochSeconds = Field(description="Window end, epoch seconds UTC; after start, at most a day later.")


class TimeRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    start: EpochSeconds = Field(description="Epoch seconds UTC.")
    end: EpochSeconds = Field(description="Epoch seconds UTC.")


class TimelineGap(TimeRange):
    reason: GapReason = Field(description="no recording (camera or box off, aged out) or damaged segment.")
    problem: Text | None = Field(None, max_length=300, description="damaged segment: what is wrong with the file.")


class TimelineResult(BaseModel):
    """The `result` of a box's reply to a `timeline` command."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    camera: Name = Field(description="The camera's name on the box.")
    start: EpochSeconds = Field(description="The window asked, start.")
    end: EpochSeconds = Field(description="The window asked, end.")
    spans: list[TimeRange] = Field(max_length=MAX_TIMELINE_ITEMS, description="Recorded video, oldest first.")
    gaps: list[TimelineGap] = Field(max_length=MAX_TIMELINE_ITEMS, description="Where there is none, and why.")
    motion: list[TimeRange] = Field(
        max_length=MAX_TIMELINE_ITEMS, description="Recorded segments in which the box saw motion."
    )
    merged_under: float = Field(
        ge=0, description="Spans and motion closer than this many seconds were merged to fit one message (0: none)."
    )
