"""The gate of one box as the CLI (and later the gate loop) uses it: its config's doors over its
allow-list. Opening it writes the configured doors into gate.db, so the file describes the box."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge_agent.config.schema import AgentConfig
from edge_agent.gate.credential import Credential
from edge_agent.gate.engine import Decision, Engine
from edge_agent.gate.importer import ImportResult, import_csv
from edge_agent.gate.store import DoorRow, gate_db_path, open_db, put_door


def door_rows(config: AgentConfig) -> dict[str, DoorRow]:
    return {
        name: DoorRow(name, door.building, door.area or door.building, door.direction, door.anti_passback)
        for name, door in config.doors.items()
    }


class Gate:
    def __init__(self, config: AgentConfig, create: bool = False) -> None:
        self.path: Path = gate_db_path(config.storage.root)
        self.db: sqlite3.Connection = open_db(self.path, create=create)
        doors = door_rows(config)
        for row in doors.values():
            put_door(self.db, row)
        self.engine = Engine(self.db, doors, config.timezone)
        self.timezone = config.timezone

    def decide(self, door: str, credential: Credential | tuple[int, int], at: float) -> Decision:
        return self.engine.decide(door, credential, at)

    def import_csv(self, path: Path) -> ImportResult:
        return import_csv(self.db, path, self.timezone)

    def close(self) -> None:
        self.db.close()
