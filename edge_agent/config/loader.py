"""Read an agent config file: YAML -> secrets expanded -> defaults merged -> validated model.

Errors are `ConfigError`s that name the file, the key path and what is wrong, e.g.
`agent.yaml: cameras.shop.record.retain_days: Input should be greater than 0`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge_agent.capture.kinds import classify
from edge_agent.config.schema import AgentConfig

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Keys of `defaults` that are merged into each camera.
_MERGED_KEYS = ("transport", "record", "detect", "reconnect")


class ConfigError(ValueError):
    """A config file that cannot be used; the message is meant for the installer."""


def load_config(path: str | Path) -> AgentConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    return parse_config(text, source=str(path), base_dir=path.resolve().parent)


def read_mapping(text: str, source: str) -> dict[str, Any]:
    """YAML text -> a mapping with ${ENV_VAR} references expanded (shared with the hub's config)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, not {type(raw).__name__}")
    expanded: dict[str, Any] = expand_env(raw, source, ())
    return expanded


def parse_config(text: str, source: str = "<config>", base_dir: Path | None = None) -> AgentConfig:
    """Validate config text. Relative paths (storage root, video files, password files) are taken
    relative to `base_dir`, the config file's directory, so a config works from any working directory."""
    raw = merge_defaults(read_mapping(text, source))
    try:
        config = AgentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    if base_dir is not None:
        config = _resolve_paths(config, base_dir)
    _check_references(config, source)
    return config


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
    storage = config.storage
    if not storage.root.is_absolute():
        storage = storage.model_copy(update={"root": base / storage.root})
    return config.model_copy(update={"storage": storage, "cameras": cameras, "models_dir": models_dir})


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


def format_validation_error(
    exc: ValidationError, source: str, unknown_key_hint: str = "see docs/configuration.md"
) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"] if part not in ("function-after",))
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown key (check the spelling; {unknown_key_hint})"
        lines.append(f"{source}: {loc or '<top level>'}: {message}")
    return "\n".join(lines)


def expand_env(value: Any, source: str, path: tuple[str, ...]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                where = ".".join(path)
                raise ConfigError(f"{source}: {where}: environment variable {name} is not set")
            return os.environ[name]

        return _ENV_REF.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: expand_env(v, source, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, source, (*path, str(i))) for i, v in enumerate(value)]
    return value


def _check_references(config: AgentConfig, source: str) -> None:
    from firmware_configs import profile_names

    for name, camera in config.cameras.items():
        if camera.profile is not None and camera.profile not in profile_names():
            raise ConfigError(
                f"{source}: cameras.{name}.profile: unknown camera profile {camera.profile!r} "
                f"(known: {', '.join(profile_names())})"
            )
        if camera.password_file is not None and not os.access(camera.password_file, os.R_OK):
            raise ConfigError(f"{source}: cameras.{name}.password_file: cannot read {camera.password_file}")
