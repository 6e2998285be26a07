"""Agent configuration: schema, loading and the commented template."""

from edge_agent.config.loader import ConfigError, load_config, parse_config
from edge_agent.config.schema import AgentConfig, CameraConfig

__all__ = ["AgentConfig", "CameraConfig", "ConfigError", "load_config", "parse_config"]
