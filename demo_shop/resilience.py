"""Timeouts and the checkout deadline, in one place.

Every outbound call takes its timeout from `Timeouts` and is cut short by the
request's `Deadline`, so no shopper waits past the checkout deadline. Circuit breakers,
retries and bulkheads come on top of this module, never inside handlers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Connect and read timeouts for one dependency's calls, in seconds."""

    connect: float = 0.5
    read: float = 2.0


class Deadline:
    """A point in time after which nobody should still be waiting for an answer."""

    __slots__ = ("_at",)

    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds

    @classmethod
    def none(cls) -> Deadline:
        """A deadline far away, for calls outside a checkout."""
        return cls(3600.0)

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self._at - time.monotonic())

    def cap(self, timeout: float, floor: float = 0.05) -> float:
        """The smaller of timeout and the time left (at least floor, so a call can fail fast)."""
        return max(floor, min(timeout, self.remaining()))

    def earlier(self, seconds: float) -> Deadline:
        """A deadline that ends seconds before this one (time kept back for clean-up)."""
        sooner = Deadline(0.0)
        sooner._at = self._at - seconds
        return sooner

    @property
    def expired(self) -> bool:
        """True when no time is left."""
        return self.remaining() <= 0.0
