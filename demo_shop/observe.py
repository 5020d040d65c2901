"""One place where every dependency call is timed, counted and turned into shop errors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .domain import ShopError
from .errors import DependencyUnavailable
from .health import HealthBoard
from .metrics import DEPENDENCY_CALLS, DEPENDENCY_ERRORS, DEPENDENCY_LATENCY

Translate = Callable[[BaseException], DependencyUnavailable | None]


class CallObserver:
    """Wraps dependency calls: metrics, health board, and error translation."""

    def __init__(self, board: HealthBoard) -> None:
        self.board = board

    @contextmanager
    def call(self, dependency: str, operation: str, translate: Translate) -> Iterator[None]:
        """Time the block; a library error becomes the DependencyUnavailable translate gives."""
        start = time.perf_counter()
        try:
            yield
        except ShopError as exc:
            # The dependency answered; the answer was a business "no" (declined, out of stock),
            # unless it is one of ours that already says the dependency failed.
            ok = not isinstance(exc, DependencyUnavailable)
            self._finish(dependency, operation, start, ok, getattr(exc, "kind", ""))
            raise
        except Exception as exc:
            shop_error = translate(exc)
            if shop_error is None:
                self._finish(dependency, operation, start, False, "other")
                raise
            self._finish(dependency, operation, start, False, shop_error.kind)
            raise shop_error from exc
        else:
            self._finish(dependency, operation, start, True, "")

    def _finish(self, dependency: str, operation: str, start: float, ok: bool, kind: str) -> None:
        duration = time.perf_counter() - start
        DEPENDENCY_CALLS.labels(dependency, operation, "ok" if ok else "error").inc()
        DEPENDENCY_LATENCY.labels(dependency, operation).observe(duration)
        if not ok:
            DEPENDENCY_ERRORS.labels(dependency, kind or "other").inc()
        self.board.record(dependency, ok, duration)
