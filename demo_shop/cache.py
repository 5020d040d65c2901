"""Short-lived caches for what the pages show (the catalog, stock levels), so browsing does
not wait on a slow dependency and keeps working for a while on the last known answer when
one fails. Serving a stale answer is a fallback: callers mark the answer degraded."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ShortCache(Generic[T]):
    """A value fetched at most every `fresh_for` seconds by one thread at a time (the others
    keep the last value meanwhile). When a fetch fails, the last value is served for up to
    `serve_stale_for` seconds; after that, or with nothing fetched yet, the error goes up."""

    def __init__(self, fetch: Callable[[], T], fresh_for: float, serve_stale_for: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._fresh_for, self._stale_for = fresh_for, serve_stale_for
        self._clock = clock
        self._value: T | None = None
        self._at: float | None = None
        self._refreshing = threading.Lock()

    def get(self) -> tuple[T, bool]:
        """(the value, whether it is fresh); raises the fetch's error when nothing usable
        is cached."""
        now = self._clock()
        if self._at is not None and now - self._at < self._fresh_for:
            assert self._value is not None
            return self._value, True
        usable = self._at is not None and now - self._at < self._stale_for
        if usable and not self._refreshing.acquire(blocking=False):
            assert self._value is not None
            return self._value, False  # someone else is fetching: the last value meanwhile
        if not usable:
            self._refreshing.acquire()
        try:
            value = self._fetch()
        except Exception:
            if not usable:
                raise
            assert self._value is not None
            return self._value, False
        finally:
            self._refreshing.release()
        self._value, self._at = value, self._clock()
        return value, True
