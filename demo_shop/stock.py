"""Stock levels for the shop's pages from a short-lived cache, so browsing never waits on
inventory and a slow or failed inventory still shows the last known numbers for a while."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .errors import DependencyUnavailable


class StockCache:
    """Available units per sku, fetched at most every `fresh_for` seconds by one thread at a
    time (the others keep showing the last numbers); when inventory fails, the last numbers
    are shown for up to `serve_stale_for` seconds, then stock is shown as unknown."""

    def __init__(self, fetch: Callable[[], dict[str, int]], fresh_for: float = 5.0,
                 serve_stale_for: float = 120.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._fresh_for, self._stale_for = fresh_for, serve_stale_for
        self._clock = clock
        self._levels: dict[str, int] = {}
        self._at: float | None = None
        self._refreshing = threading.Lock()

    def levels(self) -> tuple[dict[str, int], bool]:
        """(available per sku, whether that is fresh). Empty when nothing usable is known."""
        now = self._clock()
        fresh = self._at is not None and now - self._at < self._fresh_for
        if not fresh and self._refreshing.acquire(blocking=False):
            try:
                self._levels, self._at = self._fetch(), self._clock()
                return dict(self._levels), True
            except DependencyUnavailable:
                pass
            finally:
                self._refreshing.release()
        usable = self._at is not None and now - self._at < self._stale_for
        return (dict(self._levels) if usable else {}), fresh
