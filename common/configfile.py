"""Config files, read the same way by the agent and the hub: UTF-8 YAML with ${ENV_VAR} secrets,
validated by strict pydantic models, and errors (`ConfigError`) that name the file, the key path
and what is wrong, e.g. `agent.yaml: cameras.shop.record.retain_days: Input should be greater than 0`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """A config file that cannot be used; the message is meant for the installer."""


def read_config_text(path: Path) -> str:
    """The file's text; a file that is missing, unreadable or not UTF-8 is a ConfigError naming it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")  # a byte-order mark (Windows editors) is harmless
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8 "
            "(e.g. iconv -f GB18030 -t UTF-8 FILE > FILE.new)"
        ) from None


def read_mapping(text: str, source: str) -> dict[str, Any]:
    """YAML text -> a mapping with ${ENV_VAR} references expanded."""
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
