"""What the shop knows about each dependency, for the banner, /status and metrics.

Each worker keeps a short window of call outcomes per dependency, fed by real calls
(passively) and by a background prober (actively, so the state clears after recovery
even when no shopper is calling). State changes are exported as a gauge.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import DEPENDENCIES
from .metrics import DEPENDENCY_STATE

OPERATIONAL, DEGRADED, DOWN = "operational", "degraded", "down"
STATE_VALUE = {OPERATIONAL: 0, DEGRADED: 1, DOWN: 2}

MESSAGES = {
    ("payments", DOWN): "Card payments are not going through right now. Your cart is saved; "
    "please try checking out again in a few minutes.",
    ("payments", DEGRADED): "Card payments are slower than usual. "
    "Checkout may take a little longer.",
    ("inventory", DOWN): "We cannot check stock right now, so checkout is paused. "
    "Your cart is saved.",
    ("inventory", DEGRADED): "Stock checks are slower than usual.",
    ("database", DOWN): "We cannot take new orders right now. Your cart is saved; "
    "please try again in a few minutes.",
    ("database", DEGRADED): "Orders are slower than usual to go through.",
    ("cache", DOWN): "Shopping carts are having trouble right now; "
    "items may not stay in your cart.",
    ("cache", DEGRADED): "Shopping carts are slower than usual.",
}

# What shoppers are told instead when a fallback keeps the feature working (resilient mode).
FALLBACK_MESSAGES = {
    ("payments", DOWN): "Card payments are not going through right now. You can still place "
    "your order: we hold your items and take the payment when the processor is back "
    "(you have not been charged yet; we'll confirm by email).",
    ("cache", DOWN): "Carts are kept in your browser for now. Shopping and checkout still work.",
    ("inventory", DOWN): "We cannot check stock right now, so checkout is paused; stock shown "
    "may be a few seconds old. Your cart is saved.",
    ("database", DOWN): "We cannot take new orders or show orders right now. You can still "
    "browse and fill your cart; please check out again in a few minutes.",
}


@dataclass(frozen=True, slots=True)
class DependencyStatus:
    """One dependency's state as told to shoppers."""

    state: str
    since: float
    message: str

    def as_json(self) -> dict[str, object]:
        """The JSON form used by /api/status."""
        return {
            "state": self.state,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since)),
            "message": self.message,
        }


class SharedStates:
    """Each worker's states in a file of its own in a folder the shop's workers share, so
    every worker tells shoppers the same thing: a dependency is shown in the worst state
    any live worker sees it in (a worker's file older than `stale_after` is ignored)."""

    def __init__(self, folder: str | Path, stale_after: float = 10.0,
                 clock: Callable[[], float] = time.time, worker: str | None = None) -> None:
        self._folder = Path(folder)
        self._folder.mkdir(parents=True, exist_ok=True)
        self._stale_after = stale_after
        self._clock = clock
        self._worker = worker  # this worker's name in the folder (default: its pid)

    def _own(self) -> Path:
        return self._folder / f"health-{self._worker or os.getpid()}.json"

    def publish(self, states: Mapping[str, tuple[str, float]]) -> None:
        """Write this worker's states (atomically: readers never see half a file)."""
        own = self._own()
        partial = own.with_suffix(".tmp")
        partial.write_text(json.dumps({"at": self._clock(), "states": dict(states)}))
        partial.replace(own)

    def others(self) -> list[dict[str, tuple[str, float]]]:
        """The states every other live worker published."""
        found = []
        for path in self._folder.glob("health-*.json"):
            if path == self._own():
                continue
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # gone or being replaced: the next read sees it
            if self._clock() - float(data.get("at", 0)) <= self._stale_after:
                found.append({d: (s[0], float(s[1])) for d, s in data["states"].items()})
        return found


class HealthBoard:
    """Sliding-window view of call outcomes per dependency, thread-safe; with SharedStates,
    the worst state any of the shop's workers sees."""

    def __init__(
        self,
        window_seconds: float = 5.0,
        slow_seconds: float | Mapping[str, float] = 1.0,
        clock: Callable[[], float] = time.time,
        messages: Mapping[tuple[str, str], str] | None = None,
        shared: SharedStates | None = None,
        heartbeat_seconds: float = 2.0,
    ) -> None:
        self._shared = shared
        self._heartbeat = heartbeat_seconds
        self._published = float("-inf")
        self._messages = {**MESSAGES, **(messages or {})}
        self._window = window_seconds
        # A call this slow counts as slow; per dependency, since a database query that takes
        # 300 ms is as far off its normal as a card payment that takes 3 s.
        self._slow = (dict(slow_seconds) if isinstance(slow_seconds, Mapping)
                      else dict.fromkeys(DEPENDENCIES, slow_seconds))
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._samples: dict[str, deque[tuple[float, bool, bool]]] = {
            d: deque(maxlen=256) for d in DEPENDENCIES
        }
        self._state: dict[str, tuple[str, float]] = {d: (OPERATIONAL, now) for d in DEPENDENCIES}

    def record(self, dependency: str, ok: bool, duration: float) -> None:
        """Add one call outcome and re-derive the dependency's state."""
        now = self._clock()
        with self._lock:
            self._samples[dependency].append(
                (now, ok, duration >= self._slow.get(dependency, 1.0)))
            changed = self._update(dependency, now)
            if self._shared is not None and (changed or now - self._published
                                             >= self._heartbeat):
                self._published = now
                self._shared.publish(self._state)

    def _update(self, dependency: str, now: float) -> bool:
        samples = self._samples[dependency]
        while samples and samples[0][0] < now - self._window:
            samples.popleft()
        failures = sum(1 for _, ok, _ in samples if not ok)
        slow = sum(1 for _, ok, is_slow in samples if ok and is_slow)
        last_three_failed = len(samples) >= 3 and not any(ok for _, ok, _ in list(samples)[-3:])
        if samples and (last_three_failed or failures * 2 >= len(samples)):
            state = DOWN
        elif failures or (samples and slow * 2 >= len(samples)):
            state = DEGRADED
        else:
            state = OPERATIONAL
        if state != self._state[dependency][0]:
            self._state[dependency] = (state, now)
            DEPENDENCY_STATE.labels(dependency).set(STATE_VALUE[state])
            return True
        return False

    def snapshot(self) -> dict[str, DependencyStatus]:
        """Every dependency's current state, with since and a message for shoppers."""
        now = self._clock()
        with self._lock:
            changed = [self._update(dependency, now) for dependency in DEPENDENCIES]
            states = dict(self._state)
            if self._shared is not None and any(changed):
                self._published = now
                self._shared.publish(states)
        for other in self._shared.others() if self._shared is not None else ():
            for dependency, (state, since) in other.items():
                mine = states.get(dependency)
                if mine is None:
                    continue
                if STATE_VALUE[state] > STATE_VALUE[mine[0]] or (
                        state == mine[0] != OPERATIONAL and since < mine[1]):
                    states[dependency] = (state, since)
        return {
            d: DependencyStatus(state, since, self._messages.get((d, state), "Working normally."))
            for d, (state, since) in states.items()
        }

    @staticmethod
    def overall(snapshot: dict[str, DependencyStatus]) -> str:
        """operational, degraded (something slow or partly failing) or major_outage."""
        states = {s.state for s in snapshot.values()}
        if DOWN in states:
            return "major_outage"
        if DEGRADED in states:
            return "degraded"
        return OPERATIONAL


class Periodic:
    """A daemon thread that calls each function every interval seconds (the health probes;
    also the reconciliation pass)."""

    def __init__(
        self, probes: Mapping[str, Callable[[], object]], board: HealthBoard, interval: float
    ) -> None:
        self._probes = probes
        self._board = board
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        """Start the thread once per process (after gunicorn's fork, on first request)."""
        if self._thread is not None or self._interval <= 0:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="health-prober", daemon=True)
                self._thread.start()

    def probe_once(self) -> None:
        """Run every probe once; a probe reports its outcome through the instrumented call."""
        for probe in self._probes.values():
            with contextlib.suppress(Exception):  # the outcome is recorded on the board
                probe()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.probe_once()

    def stop(self) -> None:
        """Stop the thread (tests)."""
        self._stop.set()
