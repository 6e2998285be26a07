"""Agent configuration: schema, loading, runtime checks and the commented template."""

from edge_agent.config.loader import ConfigError, load_config, parse_config
from edge_agent.config.runtime import check_runtime, check_storage
from edge_agent.config.schema import AgentConfig, CameraConfig

__all__ = [
    "AgentConfig",
    "CameraConfig",
    "ConfigError",
    "check_runtime",
    "check_storage",
    "load_config",
    "parse_config",
]
