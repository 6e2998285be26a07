"""What every part of the agent's configuration shares: the name alphabet and the strict base
model (unknown keys and control characters refused)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from contract.topics import NAME_PATTERN

# Camera names become directory names and MQTT topic levels: the wire's alphabet, defined once.
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
# A point in normalised frame coordinates [x, y], 0 <= x, y <= 1 (zones, masks, door lines).
Point = Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=2, max_length=2)]


# C0 controls (tab and newline included), DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _control_character(value: Any) -> str | None:
    """The first control character in a raw string (or list of strings), as U+XXXX at its position.
    Mappings are left to their own models, which check their own fields with their key paths."""
    if isinstance(value, str):
        found = _CONTROL.search(value)
        return None if found is None else f"U+{ord(found.group()):04X} at character {found.start() + 1}"
    if isinstance(value, list):
        for item in value:
            if (where := _control_character(item)) is not None:
                return where
    return None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Before type checks, so "site: a\tb" says "control character", not "should match pattern".
    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        where = _control_character(value)
        if where is not None:
            raise ValueError(
                f"contains a control character ({where}); remove it (often a tab, a newline or an escape "
                'such as "\\t" inside double quotes)'
            )
        return value
