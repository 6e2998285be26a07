"""Groups of `diaolou-hub` commands, each a front on the services (`hub/services/`)."""

from __future__ import annotations

import sqlite3

from common.clikit import CommandError
from hub.config import HubConfig
from hub.store import connect, open_store


def cli_connection(config: HubConfig) -> sqlite3.Connection:
    """hub.db for one command, created or upgraded first; one that cannot be opened is a
    CommandError naming the file."""
    try:
        open_store(config.db_path)
    except (OSError, sqlite3.DatabaseError, RuntimeError) as exc:
        raise CommandError(f"cannot open the hub database {config.db_path}: {exc}") from None
    return connect(config.db_path)
