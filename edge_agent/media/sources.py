"""Which source serves which kind of media request: one entry per kind (contract MediaKind)."""

from __future__ import annotations

from contract.media import MediaKind
from edge_agent.config.schema import AgentConfig
from edge_agent.media.live import live_factory
from edge_agent.media.source import SourceFactory


def media_sources(config: AgentConfig) -> dict[MediaKind, SourceFactory]:
    """Playback (the ring buffer's segments) registers here next to live."""
    return {"live": live_factory(config)}
