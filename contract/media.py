"""The media channel: video from a box to the hub, and only while someone watches.

Video never flows on MQTT (a village uplink cannot carry it) and the hub never connects to a box
(boxes sit behind NAT and mobile networks). So:

1. Control stays on MQTT. To start a stream the hub sends the box a Command named `media`
   (topic .../cmd/media) whose `args` are a `MediaRequest`; the box validates them with
   `MediaRequest.model_validate(args, strict=True)` and answers on .../reply as for any command
   (ok once it has dialled, or the reason it cannot: unknown camera, no recording at that time).
   A `media` command carries `expires` a few seconds ahead: a live view asked of an offline box
   is not worth delivering an hour later.
2. Data goes on a WebSocket the box dials: `MEDIA_AGENT_PATH` on the hub's HTTP port (wss:// in
   production), with `Authorization: Bearer <media token>` (`diaolou-hub devices token`). The hub
   accepts it only if the token is that device's and the session was asked of that device.
3. The box sends binary messages of fragmented MP4 (H.264 as recorded, never re-encoded): the
   first is the init segment (ftyp + moov), each next one whole fragments (moof + mdat), so a
   browser can append them to a Media Source Extensions buffer as they come. A text message is a
   `MediaNotice` (the end of a playback, or why the stream stopped). With `format: jpeg` (the
   fallback for a browser without MSE) each binary message is one JPEG picture instead.
4. The stream stops when either side closes the socket: the hub closes it when the last viewer
   has been gone for a grace period; the box closes it when the camera or recording ends.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.messages import EpochSeconds, Name, Text

MEDIA_COMMAND = "media"  # the Command name (topic .../cmd/media)
MEDIA_AGENT_PATH = "/api/v1/media/agent/{session}"  # the box's WebSocket, on the hub's HTTP port
SESSION_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"  # chosen by the hub (secrets.token_urlsafe)
MediaKind = Literal["live", "playback"]
StreamName = Literal["main", "sub"]
MediaFormat = Literal["fmp4", "jpeg"]


class MediaRequest(BaseModel):
    """What the hub asks a box to stream: the `args` of a `media` command."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    session: str = Field(pattern=SESSION_PATTERN, description="The session id the box dials back with.")
    camera: Name = Field(description="The camera's name on the box.")
    kind: MediaKind = Field(description="live: from now on; playback: from the ring buffer at `start`.")
    stream: StreamName = Field(
        "sub", description="Which of the camera's streams; sub by default (a phone needs no 1080p)."
    )
    start: EpochSeconds | None = Field(
        None, description="playback only: play from the keyframe at or before this time (epoch seconds UTC)."
    )
    format: MediaFormat = Field(
        "fmp4",
        description="fmp4: H.264 as recorded, for Media Source Extensions. jpeg (live only): one JPEG per binary "
        "message, about two a second, for a browser without MSE; decoded and encoded on the box while watched.",
    )
    speed: Literal[1, 2, 4] = Field(1, description="playback only: send media this many times faster than real time.")


class MediaNotice(BaseModel):
    """A text message on the media WebSocket, from the box."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    session: str = Field(pattern=SESSION_PATTERN, description="The session it belongs to.")
    state: Literal["started", "ended", "failed"] = Field(description="What happened to the stream.")
    time: EpochSeconds | None = Field(
        None, description="started (playback): the time of the first frame sent, epoch seconds UTC."
    )
    error: Text | None = Field(None, max_length=2000, description="failed: why, in words an installer can act on.")
