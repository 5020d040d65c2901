"""The banner judged as a shopper would: against what the shop's own /api/status said
around the moment a page was rendered.

The poller asks /api/status on a new connection each time (so every shop worker is heard
from); a page is judged once the status `after` seconds past it is known, against the
samples from `before` it to `after` it (classify.banner_expected). Runs inside Locust,
whose gevent makes these sleeps and sockets cooperative.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .classify import banner_expected
from .shape import StatusFormat


class BannerWrong(Exception):
    """A page's banner did not match the shop's own /api/status around it."""


@dataclass(frozen=True, slots=True)
class Seen:
    """A page a shopper saw, waiting for its banner to be judged."""

    at: float
    banner: bool
    name: str
    cls: str
    checkout: bool
    banner_text: str = ""


class StatusWatch:
    """The shop's /api/status as this process heard it, polled on a new connection each
    time (so every shop worker is heard from), and the judge of the banner on each page:
    a page is judged once the status `after` seconds past it is known, against the
    samples `before` it to `after` it (see classify.banner_expected)."""

    def __init__(self, base_url: str, before: float, on_wrong: Callable[[Seen, str], None],
                 status_format: StatusFormat | None = None, after: float = 2.5,
                 interval: float = 0.5, says: dict[str, str] | None = None) -> None:
        self.format = status_format or StatusFormat()
        self.url = f"{base_url.rstrip('/')}{self.format.route}"
        self.before, self.after, self.interval = before, after, interval
        self.samples: deque[tuple[float, bool | None]] = deque(maxlen=400)
        # Per dependency the banner names (`says`), whether the status called it troubled.
        self.says = {d: re.compile(p, re.IGNORECASE) for d, p in (says or {}).items()}
        self.by_dependency: dict[str, deque[tuple[float, bool | None]]] = {
            d: deque(maxlen=400) for d in self.says}
        self.pending: deque[Seen] = deque(maxlen=20_000)
        self._on_wrong = on_wrong

    def poll_once(self) -> None:
        """One sample: is any dependency not operational (None: the status did not answer),
        and each dependency the banner names, on its own."""
        troubled: bool | None
        states: dict[str, str] | None = None
        try:
            with urllib.request.urlopen(self.url, timeout=2) as answer:
                states = self.format.read(answer.read().decode("utf-8", "replace"))
            troubled = None if states is None else \
                any(state != "operational" for state in states.values())
        except (OSError, ValueError):
            troubled = None
        now = time.time()
        self.samples.append((now, troubled))
        for dependency, kept in self.by_dependency.items():
            state = None if states is None else states.get(dependency)
            kept.append((now, None if state is None else state != "operational"))

    def observe(self, seen: Seen) -> None:
        """A page to judge once the status after it is known."""
        self.pending.append(seen)

    def judge_due(self, now: float) -> int:
        """Judge every page whose look-ahead has passed; how many were wrong."""
        wrong = 0
        samples = list(self.samples)
        while self.pending and self.pending[0].at + self.after <= now:
            seen = self.pending.popleft()
            expected = banner_expected(samples, seen.at, self.before, self.after,
                                       self.interval)
            if expected == "shown" and not seen.banner:
                self._on_wrong(seen, "banner_missing")
                wrong += 1
            elif expected == "hidden" and seen.banner:
                self._on_wrong(seen, "banner_stuck")
                wrong += 1
            elif seen.banner and self._misnames(seen):
                self._on_wrong(seen, "banner_misnames")
                wrong += 1
        return wrong

    def _misnames(self, seen: Seen) -> bool:
        """The banner leaves out a dependency the status called troubled all around the
        page, or names one it called operational all around it."""
        for dependency, pattern in self.says.items():
            expected = banner_expected(list(self.by_dependency[dependency]), seen.at,
                                       self.before, self.after, self.interval)
            named = pattern.search(seen.banner_text) is not None
            if (expected == "shown" and not named) or (expected == "hidden" and named):
                return True
        return False

    def poll(self) -> None:
        """Poll until the process ends (the greenlet is killed at quit)."""
        while True:
            self.poll_once()
            time.sleep(self.interval)

    def judge(self) -> None:
        """Judge pages as their look-ahead passes, on a loop of its own so a slow poll
        cannot hold a verdict back past the timeline's open seconds."""
        while True:
            self.judge_due(time.time())
            time.sleep(0.25)
