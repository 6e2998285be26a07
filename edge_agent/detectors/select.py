"""Which detector a camera uses: `auto` is the recommended model when installed, else the built-in."""

from __future__ import annotations

from pathlib import Path

from models.registry import list_models, load_registry


def resolve_model(name: str, models_dir: Path) -> str:
    if name != "auto":
        load_registry().get(name)  # raises ModelError naming the known models
        return name
    for status in list_models(models_dir):
        if status.recommended and status.installed:
            return status.name
    return load_registry().default.name
