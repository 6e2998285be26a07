"""What the notifier and the notification routes take from the hub's config, and the notifier's
timing (tests pass a faster one)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hub.config import WebConfig
from hub.notify import robots


@dataclass(frozen=True)
class NotifySettings:
    """What the notifier and the routes take from the hub's config (web.*)."""

    public_url: str | None = None
    time_zone: str = "Asia/Shanghai"
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, web: WebConfig) -> NotifySettings:
        url = web.public_url.rstrip("/") if web.public_url else None
        return cls(url, web.time_zone, frozenset(web.notification_hosts))

    def alert_link(self, event_id: str) -> str | None:
        return f"{self.public_url}/alerts/{event_id}" if self.public_url else None


@dataclass(frozen=True)
class NotifyPolicy:
    poll_seconds: float = 1.0  # how often the matcher looks for new alerts
    batch: int = 500  # events matched per transaction
    backoff_first_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    give_up_seconds: float = 86400.0
    timeout_seconds: float = robots.TIMEOUT_SECONDS

    def backoff(self, failures: int) -> float:
        """Wait after the `failures`-th failure in a row: doubling from the first, capped."""
        return float(min(self.backoff_max_seconds, self.backoff_first_seconds * 2 ** min(failures - 1, 30)))
