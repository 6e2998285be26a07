"""What the notifications API takes and returns. Secrets go in and never come out in full: a
channel is returned with its URL masked and only whether a signing secret is set."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from hub.models import ApiModel

ChannelKind = Literal["wecom", "dingtalk"]
CHANNEL_KINDS: tuple[ChannelKind, ...] = ("wecom", "dingtalk")
HHMM = r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$"
Weekday = Annotated[int, Field(ge=1, le=7)]
WEBHOOK_URL = r"^https?://[^\s]+$"


class ChannelCreate(ApiModel):
    name: str = Field(min_length=1, max_length=64, description="What the channel is, e.g. the shop's family group.")
    kind: ChannelKind = Field(description="wecom: a WeCom (企业微信) group robot; dingtalk: a DingTalk (钉钉) robot.")
    url: str = Field(
        pattern=WEBHOOK_URL,
        max_length=500,
        description="The robot's webhook address, with its key (WeCom ...send?key=..., DingTalk "
        "...send?access_token=...). Stored as given, never shown again in full.",
    )
    secret: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="DingTalk only: the robot's signing secret (加签, SEC...). Never shown again.",
    )
    enabled: bool = True


class ChannelUpdate(ApiModel):
    """Only what is given changes. `secret: ""` removes the signing secret."""

    name: str | None = Field(None, min_length=1, max_length=64)
    url: str | None = Field(None, pattern=WEBHOOK_URL, max_length=500)
    secret: str | None = Field(None, max_length=200)
    enabled: bool | None = None


class Channel(ApiModel):
    id: int
    user: str = Field(description="Whose channel it is.")
    name: str
    kind: ChannelKind
    url: str = Field(description="The webhook address with its keys masked.")
    secret_set: bool = Field(description="A DingTalk signing secret is stored (it is never returned).")
    enabled: bool
    created: float
    updated: float
    pending: int = Field(description="Alerts waiting to be delivered (the robot did not take them yet).")
    failures: int = Field(description="Failed attempts in a row; 0 after a delivery.")
    last_error: str | None = Field(description="Why the last attempt failed, if it did.")
    last_sent: float | None = Field(description="When the robot last took a message.")


class ChannelList(ApiModel):
    items: list[Channel]


class SendResult(ApiModel):
    ok: bool
    error: str | None = Field(description="Why the robot did not take the test message.")


class ArmingSegment(ApiModel):
    start: str = Field(pattern=HHMM, description="Local time HH:MM the segment starts.")
    end: str = Field(
        pattern=HHMM, description="Local time HH:MM it ends; earlier than start = the next morning; 24:00 = midnight."
    )
    days: list[Weekday] = Field(
        [1, 2, 3, 4, 5, 6, 7],
        min_length=1,
        max_length=7,
        description="Days (1 = Monday ... 7 = Sunday) the segment starts on; every day by default.",
    )


class ArmingSet(ApiModel):
    time_zone: str | None = Field(
        None, max_length=64, description="IANA time zone of the camera's site; the hub's web.time_zone if omitted."
    )
    segments: list[ArmingSegment] = Field(
        max_length=12, description="When alerts of this camera are sent; an empty list: never."
    )


class Arming(ApiModel):
    camera: str
    time_zone: str
    segments: list[ArmingSegment]
    always: bool = Field(description="No schedule set: every alert of the camera is sent.")
    armed_now: bool


class ArmingList(ApiModel):
    items: list[Arming]
