"""Broker URLs, as both sides write them: mqtt://[user:password@]host[:port] or mqtts://... .

User and password may be percent-encoded (%40 for @); a password never appears in `display()`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

URL_PATTERN = re.compile(r"^mqtts?://([^@/\s]+@)?[^@/:\s]+(:\d{1,5})?/?$")
URL_HINT = "expected mqtt://[user:password@]host:port or mqtts://..."


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    def display(self) -> str:
        """Where we connect, for logs: the user but never the password."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def check_broker_url(value: str) -> str:
    """For pydantic validators: the URL unchanged, or ValueError with the expected form."""
    if not URL_PATTERN.match(value):
        raise ValueError(URL_HINT)
    return value


def parse_broker_url(url: str) -> BrokerAddress:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"not a broker URL ({URL_HINT}): {parts.scheme}://...")
    tls = parts.scheme == "mqtts"
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return BrokerAddress(parts.hostname, parts.port or (8883 if tls else 1883), tls, username, password)
