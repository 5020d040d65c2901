"""The scripted outage: what a shopper sees when payments go down in the middle of checkouts.

baseline (checkouts with nothing broken) -> fault (the payments proxy disabled) ->
rollback (always, in finally) -> recovery (checkouts must succeed again). Every answer is
classified against the graceful-failure contract; time-to-communicate is how long
/api/status took to name the failing dependency, time-to-clear how long it took to clear.
"""

from __future__ import annotations

import json
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from loadtests.classify import CLASSES, UNGRACEFUL

from .faults import FaultInjector
from .shopper import Answer, api_checkout, html_checkout


@dataclass(slots=True)
class PhaseResult:
    """The answers of one phase."""

    name: str
    answers: list[Answer] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        """How many answers fell in each class."""
        return Counter(a.verdict.cls for a in self.answers)

    def latency(self, q: float) -> float:
        """The q-quantile of answer time, in seconds."""
        times = sorted(a.elapsed for a in self.answers)
        if not times:
            return 0.0
        return times[min(len(times) - 1, int(q * len(times)))]


@dataclass(slots=True)
class OutageReport:
    """Everything the scripted outage observed."""

    dependency: str
    phases: list[PhaseResult]
    time_to_communicate: float | None
    time_to_clear: float | None
    sample_problem: str
    sorry_page: Answer | None

    @property
    def passed(self) -> bool:
        """No ungraceful answer anywhere, the outage was communicated, and checkout recovered."""
        ungraceful = sum(p.counts()[UNGRACEFUL] for p in self.phases)
        recovery = self.phases[-1]
        return (ungraceful == 0 and self.time_to_communicate is not None
                and recovery.counts()["ok"] == len(recovery.answers))

    def markdown(self) -> str:
        """A summary fit for a terminal, a file, or a CI job summary."""
        lines = [
            f"# Scripted outage: `{self.dependency}` down during checkout",
            "",
            f"**Verdict: {'PASS' if self.passed else 'FAIL'}** — "
            + ("every answer met the graceful-failure contract and checkout recovered."
               if self.passed else "see the table below."),
            "",
            "| phase | checkouts | " + " | ".join(CLASSES) + " | p50 s | p95 s |",
            "|---|---:|" + "---:|" * len(CLASSES) + "---:|---:|",
        ]
        for p in self.phases:
            c = p.counts()
            lines.append(
                f"| {p.name} | {len(p.answers)} | " + " | ".join(str(c[k]) for k in CLASSES)
                + f" | {p.latency(0.5):.3f} | {p.latency(0.95):.3f} |"
            )
        def seconds(value: float | None) -> str:
            return f"{value:.2f} s" if value is not None else "never"

        ttc, ttl = seconds(self.time_to_communicate), seconds(self.time_to_clear)
        lines += ["", f"- Time to communicate (status page names `{self.dependency}`): {ttc}",
                  f"- Time to clear after recovery: {ttl}"]
        reasons = Counter(a.verdict.reason for p in self.phases for a in p.answers
                          if a.verdict.cls == UNGRACEFUL)
        if reasons:
            lines.append("- Ungraceful answers by reason: " + ", ".join(
                f"{r} x{n}" for r, n in reasons.most_common()))
        if self.sample_problem:
            lines += ["", "What an API shopper was told during the outage:", "",
                      "```json", self.sample_problem, "```"]
        if self.sorry_page is not None:
            lines += ["", f"The HTML checkout during the outage answered "
                      f"{self.sorry_page.status} ({self.sorry_page.verdict.cls}); the page is "
                      "saved beside this report as `sorry.html`."]
        return "\n".join(lines) + "\n"


class Interrupted(Exception):
    """SIGTERM arrived: unwind so that rollback runs."""


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into an exception for the duration, so finally blocks run."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted("terminated")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _status_of(base_url: str, status_name: str) -> str | None:
    try:
        body = httpx.get(f"{base_url}/api/status", timeout=2).json()
        return str(body["dependencies"][status_name]["state"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


class StatusWatcher:
    """Polls /api/status from the moment it starts until a dependency shows a state."""

    def __init__(self, base_url: str, dependency: str, state: str, timeout: float) -> None:
        self._base_url, self._dependency, self._state = base_url, dependency, state
        self._timeout = timeout
        self.elapsed: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StatusWatcher:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._done.is_set() and time.monotonic() - self._started < self._timeout:
            if _status_of(self._base_url, self._dependency) == self._state:
                self.elapsed = time.monotonic() - self._started
                return
            self._done.wait(0.1)

    def result(self) -> float | None:
        """Wait for the watcher to see the state or time out; seconds, or None."""
        self._thread.join(self._timeout + 5)
        return self.elapsed

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(5)


def run_outage(
    base_url: str,
    faults: FaultInjector,
    out_dir: Path,
    proxy: str = "payments",
    status_name: str = "payments",
    checkouts_per_phase: int = 20,
    concurrency: int = 4,
    deadline: float = 5.0,
    progress: Callable[[str], None] = lambda msg: None,
) -> OutageReport:
    """Run baseline, fault and recovery; the proxy is re-enabled whatever happens."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for line in faults.sweep():
        progress(f"swept leftover: {line}")

    def phase(name: str) -> PhaseResult:
        progress(f"phase {name}: {checkouts_per_phase} checkouts")
        with ThreadPoolExecutor(concurrency) as pool:
            answers = list(pool.map(lambda _: api_checkout(base_url, deadline),
                                    range(checkouts_per_phase)))
        return PhaseResult(name, answers)

    phases = [phase("baseline")]
    sample, sorry = "", None
    with sigterm_unwinds():
        try:
            progress(f"fault: disabling the {proxy} proxy")
            with StatusWatcher(base_url, status_name, "down", 15.0) as watcher:
                faults.disable(proxy)
                during = phase("fault")
                ttc = watcher.result()
            phases.append(during)
            failed = [a for a in during.answers if a.status and a.status >= 500]
            if failed:
                try:
                    sample = json.dumps(json.loads(failed[0].body), indent=2)
                except ValueError:
                    sample = failed[0].body[:500]
            sorry = html_checkout(base_url, deadline)
            (out_dir / "sorry.html").write_text(sorry.body)
        finally:
            progress(f"rollback: enabling the {proxy} proxy")
            faults.enable(proxy)
        with StatusWatcher(base_url, status_name, "operational", 30.0) as watcher:
            ttl = watcher.result()
    phases.append(phase("recovery"))
    report = OutageReport(proxy, phases, ttc, ttl, sample, sorry)
    (out_dir / "outage.md").write_text(report.markdown())
    (out_dir / "outage.json").write_text(json.dumps({
        "passed": report.passed, "time_to_communicate": ttc, "time_to_clear": ttl,
        "phases": {p.name: dict(p.counts()) for p in phases},
        "p95_seconds": {p.name: p.latency(0.95) for p in phases},
        "median_seconds": {p.name: statistics.median([a.elapsed for a in p.answers] or [0])
                           for p in phases},
    }, indent=2))
    return report
