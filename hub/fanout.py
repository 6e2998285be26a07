"""A tiny in-process publish/subscribe: how later consumers (web UI live updates, incident linking,
police notifications) learn about new records without touching ingest.

Ingest publishes a record only after it is committed, and a redelivered duplicate is not
published again, so a subscriber never sees something the database does not hold.

Callbacks run in the publisher's thread (ingest's writer), one after another: a callback must be
quick and hand real work to its own queue or thread. A callback that raises is logged and does not
stop the others, nor ingest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("diaolou.hub.fanout")

T = TypeVar("T")


class Fanout(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Copy-on-write: publish iterates a snapshot without holding the lock, so a callback may
        # subscribe or unsubscribe without deadlocking.
        self._callbacks: tuple[Callable[[T], None], ...] = ()

    def subscribe(self, callback: Callable[[T], None]) -> Callable[[], None]:
        """Call `callback(record)` for every record published from now on; returns `unsubscribe`."""
        with self._lock:
            self._callbacks = (*self._callbacks, callback)

        def unsubscribe() -> None:
            with self._lock:
                callbacks = list(self._callbacks)
                if callback in callbacks:
                    callbacks.remove(callback)
                self._callbacks = tuple(callbacks)

        return unsubscribe

    def publish(self, record: T) -> None:
        for callback in self._callbacks:
            try:
                callback(record)
            except Exception:
                log.exception("fan-out subscriber %r failed; it keeps its subscription", callback)

    def __len__(self) -> int:
        return len(self._callbacks)
