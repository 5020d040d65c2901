"""The scripted outage: what a shopper sees when payments go down in the middle of checkouts.

baseline (checkouts with nothing broken) -> fault (the payments proxy disabled) ->
rollback (always, in finally) -> recovery (checkouts must succeed again). Every answer is
classified against the graceful-failure contract; time-to-communicate is how long
/api/status took to name the failing dependency, time-to-clear how long it took to clear.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from loadtests.classify import CLASSES, UNGRACEFUL

from .faults import FaultInjector
from .probes import StatusPoller
from .run.safety import interruptible
from .shopper import Answer, api_checkout, html_checkout
from .waiting import poll


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


def _wait(measure: Callable[[], float | None], timeout: float) -> float | None:
    """Poll a measurement until it has a value or the timeout passes."""
    return poll(measure, timeout)


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
    status = StatusPoller(base_url, interval=0.1)
    status.start()
    with interruptible():
        try:
            progress(f"fault: disabling the {proxy} proxy")
            injected = time.time()
            faults.disable(proxy)
            during = phase("fault")
            ttc = _wait(lambda: status.first(status_name, injected, operational=False), 15.0)
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
            restored = time.time()
        ttl = _wait(lambda: status.first(status_name, restored, operational=True), 30.0)
    status.stop()
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
