"""Read an agent config file: YAML -> secrets expanded -> defaults merged -> validated model.

Errors are `ConfigError`s that name the file, the key path and what is wrong, e.g.
`agent.yaml: cameras.shop.record.retain_days: Input should be greater than 0`.
This judges the file alone; what the file names on this machine (storage root, video files,
password files) is checked by edge_agent/config/runtime.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from common.configfile import ConfigError as ConfigError  # re-exported: the agent's modules import it from here
from common.configfile import format_validation_error, read_config_text, read_mapping
from edge_agent.capture.kinds import classify
from edge_agent.config.schema import WHOLE, AgentConfig

# Keys of `defaults` that are merged into each camera.
_MERGED_KEYS = ("transport", "record", "detect", "reconnect")


def load_config(path: str | Path) -> AgentConfig:
    """A whole agent config from a file (what `run` uses: it must have a camera)."""
    path = Path(path)
    return parse_config(read_config_text(path), source=str(path), base_dir=path.resolve().parent, whole=True)


def parse_config(
    text: str, source: str = "<config>", base_dir: Path | None = None, *, whole: bool = False
) -> AgentConfig:
    """Validate config text. Relative paths (storage root, video files, password files) are taken
    relative to `base_dir`, the config file's directory, so a config works from any working directory.
    `whole`: the text is a box's entire config (an empty one, or one without a camera, is an error),
    not a fragment such as a provisioning snippet."""
    mapping = read_mapping(text, source)
    if whole and not mapping:
        raise ConfigError(
            f"{source}: the file is empty (no keys): a config needs at least one camera under `cameras:`; "
            "`diaolou-agent config init --storage DIR --camera NAME=SOURCE` prints a complete one"
        )
    raw = merge_defaults(mapping)
    try:
        config = AgentConfig.model_validate(raw, context={WHOLE: whole})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    _check_references(config, source)
    return config


def config_warnings(config: AgentConfig, source: str) -> list[str]:
    """What is valid but probably unintended: `site` or `device` left at the placeholder default.
    (Not an error: stand-alone boxes and older configs run without them.)"""
    unset = [key for key in ("site", "device") if key not in config.model_fields_set]
    if not unset:
        return []
    shown = ", ".join(f"{key}: {getattr(config, key)!r}" for key in unset)
    return [
        f"{source}: {' and '.join(unset)} not set, so this box reports as {shown}; set them (the village or "
        "dormitory id, and this box's id) before it connects to a hub, where boxes must not share them"
    ]


def _resolve_paths(config: AgentConfig, base: Path) -> AgentConfig:
    def resolve_source(value: str | None) -> str | None:
        if value is None:
            return None
        if classify(value) != "file" or Path(value).is_absolute():
            return value
        return str(base / value)

    cameras = {}
    models_dir = config.models_dir if config.models_dir.is_absolute() else base / config.models_dir
    for name, cam in config.cameras.items():
        update: dict[str, object] = {
            "source": resolve_source(cam.source),
            "detect_source": resolve_source(cam.detect_source),
        }
        if cam.password_file is not None and not cam.password_file.is_absolute():
            update["password_file"] = base / cam.password_file
        cameras[name] = cam.model_copy(update=update)
    doors = {}
    for name, door in config.doors.items():
        key_file = door.reader.key_file
        if key_file is not None and not key_file.is_absolute():
            door = door.model_copy(update={"reader": door.reader.model_copy(update={"key_file": base / key_file})})
        doors[name] = door
    storage = config.storage
    if not storage.root.is_absolute():
        storage = storage.model_copy(update={"root": base / storage.root})
    return config.model_copy(update={"storage": storage, "cameras": cameras, "doors": doors, "models_dir": models_dir})


def merge_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """Return `raw` with the `defaults` section merged under each camera's own keys."""
    defaults = raw.get("defaults") or {}
    cameras = raw.get("cameras")
    if not isinstance(defaults, dict) or not isinstance(cameras, dict):
        return raw  # validation reports the wrong type with its key path
    merged_cameras: dict[Any, Any] = {}
    for name, camera in cameras.items():
        if not isinstance(camera, dict):
            merged_cameras[name] = camera
            continue
        merged = dict(camera)
        for key in _MERGED_KEYS:
            if key in defaults:
                merged[key] = _deep_merge(defaults[key], camera.get(key))
        merged_cameras[name] = merged
    return {**raw, "cameras": merged_cameras}


# Mappings that a camera replaces as a whole: a camera must be able to drop a default zone.
_ATOMIC_KEYS = {"zones"}


def _deep_merge(base: Any, own: Any) -> Any:
    """`own` over `base`, key by key down nested mappings; lists and `zones` replace, not merge."""
    if own is None:
        return base
    if isinstance(base, dict) and isinstance(own, dict):
        return {
            k: own[k] if k in _ATOMIC_KEYS and k in own else _deep_merge(base.get(k), own[k]) if k in own else base[k]
            for k in base.keys() | own.keys()
        }
    return own


def _check_references(config: AgentConfig, source: str) -> None:
    from firmware_configs import profile_names

    for name, camera in config.cameras.items():
        if camera.profile is not None and camera.profile not in profile_names():
            raise ConfigError(
                f"{source}: cameras.{name}.profile: unknown camera profile {camera.profile!r} "
                f"(known: {', '.join(profile_names())})"
            )
