"""Which source serves which kind of media request: one entry per kind (contract MediaKind)."""

from __future__ import annotations

from pathlib import Path

from contract.media import MediaKind
from edge_agent.config.schema import AgentConfig
from edge_agent.media.live import live_factory
from edge_agent.media.playback import playback_factory
from edge_agent.media.source import SourceFactory
from edge_agent.record.index import SegmentIndex


def media_sources(config: AgentConfig, root: Path, index: SegmentIndex) -> dict[MediaKind, SourceFactory]:
    """Live from the cameras; playback from the ring buffer (its root and index)."""
    return {"live": live_factory(config), "playback": playback_factory(root, index, list(config.cameras))}
