"""The `release_hold` command: an admin at the hub releases the legal hold an evidence clip put
on its window of recording (hub: POST /api/v1/clips/{id}/release-hold, with a reason, audited).

The hub keeps the command until the box replies (an offline box releases it when it is back);
the box releases the hold it made for that clip and answers with how many it released (0: it
held nothing, e.g. the clip failed before it was built), so a repeat is harmless.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from contract.messages import Name

RELEASE_HOLD_COMMAND = "release_hold"


def clip_hold_reason(clip: str) -> str:
    """The reason a box records on the hold of an evidence clip's window: how it finds it again."""
    return f"evidence clip {clip}"


class ReleaseHoldRequest(BaseModel):
    """The `args` of a `release_hold` command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip: str = Field(pattern=r"^[0-9A-Z]{26}$", description="The clip whose hold to release (its ULID).")
    camera: Name = Field(description="The camera's name on the box.")


class ReleaseHoldResult(BaseModel):
    """The `result` of the box's reply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    released: int = Field(ge=0, description="How many holds the box released (0: none was held).")
