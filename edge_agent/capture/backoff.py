"""Capped exponential backoff with jitter, so 50 cameras behind one router do not reconnect in step."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self._rng = rng or random.Random()
        self._next = initial
        self.attempts = 0

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        self.attempts += 1
        return min(self.maximum, delay * self._rng.uniform(0.8, 1.2))

    def reset(self) -> None:
        self._next = self.initial
        self.attempts = 0
