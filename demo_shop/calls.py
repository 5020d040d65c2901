"""One place where every dependency call is guarded, timed, counted and turned into shop
errors: the resilience policy's breaker and bulkhead are applied here, not in handlers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .domain import ShopError
from .errors import DependencyUnavailable
from .health import HealthBoard
from .metrics import DEPENDENCY_CALLS, DEPENDENCY_ERRORS, DEPENDENCY_LATENCY
from .resilience import DependencyGuard

Translate = Callable[[BaseException], DependencyUnavailable | None]


class GuardedCalls:
    """Wraps dependency calls: guard (breaker, bulkhead), metrics, health board, errors."""

    def __init__(self, board: HealthBoard,
                 guards: dict[str, DependencyGuard] | None = None) -> None:
        self.board = board
        self.guards = guards or {}  # empty: no breakers or bulkheads (fragile mode)

    def guard(self, dependency: str) -> DependencyGuard | None:
        """The dependency's guard, if the policy has one."""
        return self.guards.get(dependency)

    @contextmanager
    def call(self, dependency: str, operation: str, translate: Translate, *,
             probe: bool = False) -> Iterator[None]:
        """Admit, time and record the block; a library error becomes a DependencyUnavailable.

        A probe (the prober's health call) is not admitted by the breaker and its failures do
        not count against it; a probe that succeeds closes an open breaker at once, so
        shoppers' calls resume within a probe interval of recovery, not a reset timeout.
        """
        start = time.perf_counter()
        guard = self.guards.get(dependency)
        admitted = False
        failure: DependencyUnavailable | None = None
        try:
            if guard is not None and not probe:
                guard.admit()  # fails fast when the breaker is open or the bulkhead full
                admitted = True
            try:
                yield
            except ShopError:
                raise
            except Exception as exc:
                shop_error = translate(exc)
                if shop_error is None:
                    raise
                raise shop_error from exc
        except DependencyUnavailable as exc:
            failure = exc
            self._finish(dependency, operation, start, False, exc.kind)
            raise
        except ShopError:
            # The dependency answered; the answer was a business "no" (declined, sold out).
            self._finish(dependency, operation, start, True, "")
            raise
        except Exception as exc:
            failure = DependencyUnavailable(dependency, "other", type(exc).__name__)
            self._finish(dependency, operation, start, False, "other")
            raise
        else:
            self._finish(dependency, operation, start, True, "")
            if probe and guard is not None:
                guard.probe_succeeded()
        finally:
            if admitted:
                assert guard is not None
                guard.release(failure)

    def _finish(self, dependency: str, operation: str, start: float, ok: bool, kind: str) -> None:
        duration = time.perf_counter() - start
        DEPENDENCY_CALLS.labels(dependency, operation, "ok" if ok else "error").inc()
        DEPENDENCY_LATENCY.labels(dependency, operation).observe(duration)
        if not ok:
            DEPENDENCY_ERRORS.labels(dependency, kind or "other").inc()
        self.board.record(dependency, ok, duration)
