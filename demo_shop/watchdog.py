"""One thread per process that runs each armed callback when its time comes, unless it was
disarmed first.

A guard per database transaction used to be a `threading.Timer`: a new OS thread started
and joined for every transaction, on the checkout's hot path. Arming the watchdog is a
heap push under a lock; the one thread sleeps until the earliest deadline. A disarmed
entry stays in the heap until its time and is then dropped, so the heap holds at most the
guards armed in the last timeout's span.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Watchdog:
    """Callbacks due at a time, run by one daemon thread (started again after a fork)."""

    def __init__(self, name: str = "watchdog") -> None:
        self._name = name
        self._due = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._armed: set[int] = set()
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, callback: Callable[[], None]) -> int:
        """Run `callback` in `seconds` unless `disarm` is called with the token first."""
        with self._due:
            token = next(self._tokens)
            heapq.heappush(self._heap, (time.monotonic() + seconds, token, callback))
            self._armed.add(token)
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(target=self._run, name=self._name,
                                                daemon=True)
                self._thread.start()
            elif self._heap[0][1] == token:
                self._due.notify()  # due before what the thread sleeps on
            return token

    def disarm(self, token: int) -> bool:
        """Cancel a callback; False when it already ran (or is running)."""
        with self._due:
            if token in self._armed:
                self._armed.discard(token)
                return True
            return False

    @property
    def armed(self) -> int:
        """Callbacks waiting to run."""
        with self._due:
            return len(self._armed)

    def _run(self) -> None:
        while True:
            with self._due:
                callback = self._next_due()
            callback()  # outside the lock: it may take a while, and arming must not wait

    def _next_due(self) -> Callable[[], None]:
        while True:
            while self._heap and self._heap[0][1] not in self._armed:
                heapq.heappop(self._heap)  # disarmed: dropped when it comes up
            if not self._heap:
                self._due.wait()
                continue
            at, token, callback = self._heap[0]
            wait = at - time.monotonic()
            if wait <= 0:
                heapq.heappop(self._heap)
                self._armed.discard(token)
                return callback
            self._due.wait(wait)


WATCHDOG = Watchdog("pg-socket-guard")
