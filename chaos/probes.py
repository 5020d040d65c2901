"""What the runner measures: windows of the load timeline, the status page, shop metrics."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from loadtests.classify import CLASSES, CONTRACT_FAILURES
from loadtests.shape import StatusFormat
from loadtests.timeline import histogram_percentile

from .experiment import Hypothesis
from .paging import PageLog


@dataclass(frozen=True, slots=True)
class Window:
    """A named span of wall-clock time (epoch seconds, end exclusive)."""

    name: str
    start: float
    end: float

    def rows(self, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The timeline rows whose second lies in the window."""
        return [r for r in rows if self.start <= r["ts"] + 0.5 < self.end]

    def as_json(self) -> dict[str, float | str]:
        """For the journal."""
        return {"name": self.name, "start": self.start, "end": self.end}


@dataclass(slots=True)
class WindowStats:
    """Totals of a window of timeline rows."""

    seconds: int
    classes: Counter[str]
    checkouts: Counter[str]
    hist: Counter[str]
    checkout_hist: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> WindowStats:
        """Add up rows."""
        classes: Counter[str] = Counter()
        checkouts: Counter[str] = Counter()
        hist: Counter[str] = Counter()
        checkout_hist: Counter[str] = Counter()
        for row in rows:
            classes.update({c: row.get(c, 0) for c in CLASSES})
            checkouts.update({c: row.get(f"checkout_{c}", 0) for c in CLASSES})
            hist.update(row.get("hist", {}))
            checkout_hist.update(row.get("checkout_hist", {}))
        return cls(len(rows), classes, checkouts, hist, checkout_hist)

    def _counts(self, scope: str) -> Counter[str]:
        return self.checkouts if scope == "checkout" else self.classes

    def total(self, scope: str = "all") -> int:
        """Answers in scope."""
        return sum(self._counts(scope).values())

    def success_ratio(self, scope: str = "all") -> float | None:
        """ok + degraded over every answer but declines (a decline is the card's answer)."""
        counts = self._counts(scope)
        judged = sum(counts.values()) - counts["declined"]
        return (counts["ok"] + counts["degraded"]) / judged if judged else None

    def graceful_ratio(self, scope: str = "all") -> float | None:
        """Answers that met the contract, over all answers."""
        counts = self._counts(scope)
        total = sum(counts.values())
        return (total - self.contract_failures(scope)) / total if total else None

    def error_ratio(self, scope: str = "all") -> float | None:
        """graceful_error + ungraceful over all answers."""
        counts = self._counts(scope)
        total = sum(counts.values())
        return (counts["graceful_error"] + self.contract_failures(scope)) / total \
            if total else None

    def contract_failures(self, scope: str = "all") -> int:
        """Answers that broke the contract: ungraceful ones and good cards declined."""
        counts = self._counts(scope)
        return sum(counts[cls] for cls in CONTRACT_FAILURES)

    def latency(self, percentile: int, scope: str = "all") -> float | None:
        """A latency percentile in ms (the histogram bucket's upper edge) of the answers in
        scope (checkout: only the checkout calls)."""
        hist = self.checkout_hist if scope == "checkout" else self.hist
        return histogram_percentile(dict(hist), percentile / 100) if hist else None

    def summary(self) -> dict[str, Any]:
        """The figures a report compares across phases."""
        return {
            "seconds": self.seconds,
            "requests_per_s": round(self.total() / self.seconds, 1) if self.seconds else 0.0,
            "success_ratio": _round(self.success_ratio()),
            "checkout_success_ratio": _round(self.success_ratio("checkout")),
            "graceful_ratio": _round(self.graceful_ratio()),
            "checkout_graceful_ratio": _round(self.graceful_ratio("checkout")),
            "checkouts": self.total("checkout"),
            "p95_ms": self.latency(95),
            "p99_ms": self.latency(99),
            "checkout_p99_ms": self.latency(99, "checkout"),
            "ungraceful": self.classes["ungraceful"],
            "false_decline": self.classes["false_decline"],
            "classes": dict(self.classes),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class Poller:
    """A daemon thread that calls `sample()` every `interval` seconds until stopped."""

    interval: float
    _stop: threading.Event
    _thread: threading.Thread | None

    def sample(self, client: httpx.Client) -> None:
        """Take one sample (subclasses)."""
        raise NotImplementedError

    def start(self) -> None:
        """Begin polling in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name=type(self).__name__,
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=2.0) as client:
            while not self._stop.is_set():
                self.sample(client)
                self._stop.wait(self.interval)

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


@dataclass(slots=True)
class StatusPoller(Poller):
    """Polls the shop's status page and keeps (time, state per dependency) samples, read
    by the target's status format into the harness's words."""

    base_url: str
    interval: float = 0.25
    status_format: StatusFormat = field(default_factory=StatusFormat)
    samples: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self, client: httpx.Client) -> None:
        """One sample of every dependency's state ({} when the status page failed); none
        for a shop without a status page (its route is empty)."""
        if not self.status_format.route:
            return
        try:
            states = self.status_format.read(
                client.get(f"{self.base_url}{self.status_format.route}").text)
        except httpx.HTTPError:
            states = None
        # {}: the status page itself failed, or said what the format cannot read
        self.samples.append((time.time(), states or {}))

    def state_before(self, dependency: str, at: float | None,
                     within: float = 3.0) -> str | None:
        """The dependency's state in the last sample before `at` (None: no sample in the
        `within` seconds before it, or the status page did not answer)."""
        if at is None:
            return None
        before = [(when, states) for when, states in list(self.samples)
                  if at - within <= when <= at]
        return before[-1][1].get(dependency) if before else None

    def first(self, dependency: str, since: float, operational: bool) -> float | None:
        """Seconds after since until the dependency first showed (non-)operational."""
        for at, states in list(self.samples):
            if at < since or dependency not in states:
                continue
            if (states[dependency] == "operational") == operational:
                return round(at - since, 2)
        return None


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text endpoint; {} when it does not answer."""
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def counter_sum(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
                labels: dict[str, str] | None = None) -> float:
    """The sum of a counter's samples whose labels include the given ones."""
    wanted = set((labels or {}).items())
    if not name.endswith("_total"):
        name += "_total"
    return sum(v for (n, lbl), v in samples.items() if n == name and wanted <= set(lbl))


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass(slots=True)
class MetricsPoller(Poller):
    """Scrapes the shop's /metrics every few seconds while the load runs, so a counter's
    rate can be taken over any window (the shop_metric_rate probe)."""

    url: str
    interval: float = 2.0
    samples: list[tuple[float, Samples]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self, client: httpx.Client) -> None:
        """One scrape of every counter (kept only when the shop answered)."""
        at, scraped = time.time(), scrape(self.url)
        if scraped:
            self.samples.append((at, scraped))

    def rate(self, metric: str, labels: dict[str, str], window: Window) -> float | None:
        """The counter's increase per second between the first scrape in the window and the
        last one in it (None: fewer than two scrapes fell inside)."""
        inside = [(at, s) for at, s in list(self.samples) if window.start <= at <= window.end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        (first_at, first), (last_at, last) = inside[0], inside[-1]
        increase = counter_sum(last, metric, labels) - counter_sum(first, metric, labels)
        return max(0.0, increase) / (last_at - first_at)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the hypotheses are judged on besides the timeline, as known when they are
    judged: the status page's samples, when the first fault started and the last was rolled
    back, how long recovery took, the shop's own metrics."""

    status: StatusPoller
    fault_start: float | None = None
    last_rollback: float | None = None
    recovery_time: float | None = None
    shop_metrics: MetricsPoller | None = None
    pages: PageLog | None = None  # what Alertmanager sent the harness (None: none runs)
    broken: frozenset[str] = frozenset()  # the dependencies the method broke (status names)


def measure(hypothesis: Hypothesis, window: Window, rows: list[dict[str, Any]],
            context: Evidence) -> float | None:
    """The probe's value over the window; None when there was nothing to measure."""
    stats = WindowStats.of(window.rows(rows))
    probe = hypothesis.probe
    if probe == "success_ratio":
        return stats.success_ratio(hypothesis.scope)
    if probe == "graceful_ratio":
        return stats.graceful_ratio(hypothesis.scope)
    if probe == "error_ratio":
        return stats.error_ratio(hypothesis.scope)
    if probe == "ungraceful":
        return float(stats.contract_failures(hypothesis.scope))
    if probe == "latency":
        return stats.latency(hypothesis.percentile, hypothesis.scope)
    if probe == "request_rate":
        return stats.total(hypothesis.scope) / stats.seconds if stats.seconds else None
    if probe == "time_to_communicate":
        if context.fault_start is None or hypothesis.dependency is None:
            return None
        return context.status.first(hypothesis.dependency, context.fault_start, False)
    if probe == "time_to_clear":
        if context.last_rollback is None or hypothesis.dependency is None:
            return None
        return context.status.first(hypothesis.dependency, context.last_rollback, True)
    if probe == "recovery_time":
        return context.recovery_time
    if probe in ("time_to_page", "time_to_resolve", "unrelated_pages"):
        return _paging(hypothesis, context)
    if probe == "shop_metric_rate":
        return context.shop_metrics.rate(hypothesis.metric or "", hypothesis.labels, window) \
            if context.shop_metrics is not None else None
    raise AssertionError(f"unhandled probe {probe}")


def _paging(hypothesis: Hypothesis, context: Evidence) -> float | None:
    """Seconds from the fault's start until the alert naming the dependency paged, from the
    last rollback until it resolved, or how many alerts named a dependency not broken."""
    pages = context.pages
    if pages is None or context.fault_start is None:
        return None
    if hypothesis.probe == "unrelated_pages":
        return float(len(pages.unrelated(set(context.broken), context.fault_start)))
    if hypothesis.dependency is None:
        return None
    if hypothesis.probe == "time_to_page":
        return pages.first(hypothesis.dependency, "firing", context.fault_start)
    if context.last_rollback is None:
        return None
    return pages.first(hypothesis.dependency, "resolved", context.last_rollback)
