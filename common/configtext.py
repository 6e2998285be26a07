"""Commented config templates (`config init`): every field with its value, and its description as
the comment above it, so the template, the validation and the generated reference say one thing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo


def _scalar(value: Any) -> str:
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        # JSON is YAML flow style: lists and mappings (zones, polygons) stay on one line.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def field_lines(name: str, info: FieldInfo, value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    lines = []
    if info.description:
        lines.append(f"{pad}# {info.description}")
    if isinstance(value, BaseModel):
        lines.append(f"{pad}{name}:")
        lines.extend(render_model(value, indent + 1))
    else:
        lines.append(f"{pad}{name}: {_scalar(value)}")
    return lines


def render_model(model: BaseModel, indent: int = 0, only: set[str] | None = None) -> list[str]:
    lines: list[str] = []
    for name, info in type(model).model_fields.items():
        if only is not None and name not in only:
            continue
        lines.extend(field_lines(name, info, getattr(model, name), indent))
    return lines
