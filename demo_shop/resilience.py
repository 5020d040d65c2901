"""The resilience policy, in one place: timeouts, the checkout deadline, circuit breakers,
bulkheads and retries.

Every outbound call takes its timeout from `Timeouts` and is cut short by the request's
`Deadline`, so no shopper waits past the checkout deadline. Every call passes through
the GuardedCalls, which applies the dependency's `DependencyGuard` (breaker and
bulkhead); idempotent calls may be retried with `retrying`. Nothing of this is in
handlers. With SHOP_RESILIENCE=off none of it applies: a shop as many are built.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from circuitbreaker import CircuitBreaker
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from .errors import DependencyUnavailable, OutcomeUnknown
from .metrics import BREAKER_STATE

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Connect and read timeouts for one dependency's calls, in seconds."""

    connect: float = 0.5
    read: float = 2.0
    # False: the calls wait their own (library default) timeout even past the shopper's
    # checkout deadline, as a shop without deadline propagation does.
    within_deadline: bool = True

    def cap(self, deadline: Deadline) -> tuple[float, float]:
        """(connect, read) seconds for one call under deadline."""
        if not self.within_deadline:
            return self.connect, self.read
        return deadline.cap(self.connect), deadline.cap(self.read)


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


# ---- the policy: breakers, bulkheads, retries -------------------------------------------------

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class RetryBudget:
    """Retries may add at most `ratio` of the calls (plus a small burst), so a failing
    dependency is not hit by a retry storm: each call earns `ratio` of a token, a retry
    spends one."""

    def __init__(self, ratio: float = 0.1, burst: float = 10.0) -> None:
        self._ratio, self._cap = ratio, burst
        self._tokens = burst
        self._lock = threading.Lock()

    def earn(self) -> None:
        """A call was made."""
        with self._lock:
            self._tokens = min(self._cap, self._tokens + self._ratio)

    def spend(self) -> bool:
        """Take a token for a retry; False when the budget is spent."""
        with self._lock:
            if self._tokens >= 1.0 - 1e-9:  # ten calls at 0.1 each add up to 0.999...
                self._tokens -= 1.0
                return True
            return False


class DependencyGuard:
    """A circuit breaker (circuitbreaker, which does not serialise calls the way pybreaker's
    lock does) and a bulkhead (bounded concurrent calls per process) for one dependency."""

    def __init__(self, name: str, failure_threshold: int, recovery_timeout: float,
                 concurrency: int, *, breaker: bool = True, bulkhead: bool = True,
                 retries: bool = True) -> None:
        self.name = name
        self.breaker = CircuitBreaker(failure_threshold=failure_threshold,
                                      recovery_timeout=recovery_timeout, name=name,
                                      expected_exception=DependencyUnavailable)
        self._use_breaker = breaker
        # Without a bulkhead the slots are never the limit (a worker has far fewer threads).
        self._slots = threading.BoundedSemaphore(concurrency if bulkhead else 10_000)
        self.budget = RetryBudget(burst=10.0 if retries else 0.0)

    def admit(self) -> None:
        """Let a call through, or fail it fast: breaker open, or every slot taken."""
        if self._use_breaker and self.breaker.opened:
            raise DependencyUnavailable(self.name, "breaker_open", "failing fast")
        if not self._slots.acquire(blocking=False):
            raise DependencyUnavailable(self.name, "bulkhead_full", "too many calls waiting")
        self.budget.earn()

    def release(self, failure: DependencyUnavailable | None) -> None:
        """The admitted call ended: give its slot back, tell the breaker how it went.

        A call cut short by the shopper's own deadline (kind "deadline") says nothing about
        the dependency: the breaker counts it neither way.
        """
        self._slots.release()
        if not self._use_breaker:
            return
        # circuitbreaker counts outcomes through its context-manager protocol.
        if failure is None:
            self.breaker.__exit__(None, None, None)
        elif failure.kind != "deadline":
            self.breaker.__exit__(type(failure), failure, None)
        self._export()

    def probe_succeeded(self) -> None:
        """The dependency answered a health probe: an open breaker closes now."""
        if not self.breaker.closed:
            self.breaker.reset()
            self._export()

    def _export(self) -> None:
        BREAKER_STATE.labels(self.name).set(BREAKER_STATES[self.breaker.state])


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """Breaker and bulkhead sizes for one dependency."""

    failure_threshold: int = 5
    recovery_timeout: float = 5.0
    concurrency: int = 16
    breaker: bool = True
    bulkhead: bool = True
    retries: bool = True


def build_guards(settings: dict[str, GuardSettings]) -> dict[str, DependencyGuard]:
    """A guard per dependency."""
    return {name: DependencyGuard(name, s.failure_threshold, s.recovery_timeout, s.concurrency,
                                  breaker=s.breaker, bulkhead=s.bulkhead, retries=s.retries)
            for name, s in settings.items()}


def retrying(guard: DependencyGuard | None, deadline: Deadline, attempts: int = 2) -> Retrying:
    """Retries for idempotent calls: jittered backoff, within the deadline and the budget,
    never for a breaker that is open or a bulkhead that is full."""

    def worth_retrying(exc: BaseException) -> bool:
        return (isinstance(exc, DependencyUnavailable)
                and exc.kind not in ("breaker_open", "bulkhead_full")
                and deadline.remaining() > 0.2
                and guard is not None and guard.budget.spend())

    return Retrying(
        stop=stop_after_attempt(attempts if guard is not None else 1),
        wait=wait_random_exponential(multiplier=0.05, max=0.25),
        retry=retry_if_exception(worth_retrying),
        reraise=True,
    )


def call_retried(call: Callable[[], T], guard: DependencyGuard | None, deadline: Deadline,
                 attempts: int = 2) -> T:
    """Run an idempotent call under `retrying`. When any attempt may have taken effect, a
    final failure says so (OutcomeUnknown) whatever the last attempt's own error: a retry
    refused by a breaker that opened meanwhile must not hide the stock or the charge the
    first attempt may have made, or nobody gives it back."""
    maybe_done: OutcomeUnknown | None = None
    try:
        for attempt in retrying(guard, deadline, attempts):
            with attempt:
                try:
                    return call()
                except OutcomeUnknown as exc:
                    maybe_done = exc
                    raise
    except DependencyUnavailable as exc:
        if maybe_done is None or isinstance(exc, OutcomeUnknown):
            raise
        raise OutcomeUnknown(exc.dependency, maybe_done.kind,
                             f"{maybe_done.detail}, then {exc.kind}") from exc
    raise AssertionError("unreachable: retrying re-raises the last error")
