"""A game day: faults nobody picked in advance, at times nobody knows, under the labor-day
shape, and a replay of the same day from the same seed.

The faults are drawn (random.Random(seed), nothing else) from the catalog's fault
classes: every single-fault experiment of the catalog the target can take gives its
fault (role, toxic, attributes) and the hypotheses it is judged by. They land at random
times with random durations, some overlapping (never two on one dependency at once).
The run is an ordinary experiment run (chaos.run.Runner: baseline, method, rollback,
recovery, audit); each fault's own window is then judged with its catalog hypotheses,
and the report tells the day as a timeline: what broke, when the shop told shoppers,
what shoppers saw, and the revenue at risk (the carts of checkouts that did not go
through while it lasted).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .audit import last_answers, read_evidence
from .experiment import (
    Checks,
    Experiment,
    Fault,
    Hypothesis,
    Load,
    Recovery,
    SteadyState,
    Tolerance,
    catalog,
)
from .probes import Evidence, Window, WindowStats
from .run import Runner, RunResult
from .run.journal import HypothesisResult
from .run.judge import judge_phase
from .target import Target
from .vocabulary import STATUS_NAME

WARMUP, BASELINE, RECOVERY = 5.0, 10.0, 30.0
# The first fault waits this long into the method: a quiet baseline may grow into it.
FIRST_FAULT_AFTER = 12.0
MIN_DURATION, MAX_DURATION = 12.0, 40.0
SECONDS_PER_FAULT = 35.0  # about one fault per this many seconds of the method
# Probes of what shoppers got, judged only while a fault is the only one on, for at
# least MIN_ALONE seconds (the status page and the contract are judged over all of it).
SHARED_PROBES = frozenset({"success_ratio", "graceful_ratio", "error_ratio", "latency",
                           "request_rate"})
MIN_ALONE = 5.0


def meet(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Two (start, end) spans are on at the same time for a while."""
    return a[0] < b[1] and b[0] < a[1]


@dataclass(frozen=True, slots=True)
class FaultClass:
    """A kind of fault the catalog makes, and the hypotheses it judges it by."""

    source: str  # the catalog experiment it comes from
    role: str
    toxic: str
    stream: str
    attributes: tuple[tuple[str, int], ...]
    toxicity: float
    hypotheses: tuple[Hypothesis, ...]

    @property
    def label(self) -> str:
        """'payments down', 'postgres latency (jitter=200, latency=1200)', 'payments
        reset_peer 30%'."""
        values = ", ".join(f"{k}={v}" for k, v in self.attributes)
        share = f" {self.toxicity:.0%}" if self.toxicity < 1 else ""
        return f"{self.role} {self.toxic}{f' ({values})' if values else ''}{share}"


@dataclass(frozen=True, slots=True)
class Planned:
    """One fault of the day: which, when (seconds after the method starts), how long."""

    index: int
    fault_class: FaultClass
    start: float
    duration: float

    @property
    def end(self) -> float:
        """When it is rolled back."""
        return self.start + self.duration

    def overlaps(self, other: Planned) -> bool:
        """The two are on at the same time for a while."""
        return meet((self.start, self.end), (other.start, other.end))

    def fault(self) -> Fault:
        """As an experiment's fault."""
        c = self.fault_class
        return Fault(name=f"#{self.index} {c.label}", target=[c.role], toxic=c.toxic,
                     stream=c.stream,  # type: ignore[arg-type]
                     attributes=dict(c.attributes), toxicity=c.toxicity, start=self.start,
                     duration=self.duration)


def fault_classes(target: Target,
                  experiments: Sequence[tuple[Path, Experiment]] | None = None
                  ) -> list[FaultClass]:
    """Every single-fault catalog experiment the target can take, as a fault class with
    its fault-phase hypotheses (and the status page clearing, from its recovery)."""
    found: dict[tuple[Any, ...], FaultClass] = {}
    single = [(path, exp) for path, exp in (experiments if experiments is not None
                                             else catalog())
              if len(exp.faults) == 1 and len(exp.faults[0].target) == 1
              and target.skip_reason(exp) is None]
    # A fault two experiments make is judged by the dependency's own (payments-hard-down,
    # not flash-sale-payments-down).
    single.sort(key=lambda pe: (not pe[0].stem.startswith(pe[1].faults[0].target[0]),
                                pe[0].stem))
    for path, exp in single:
        fault = exp.faults[0]
        hypotheses = (*exp.hypotheses,
                      *(h for h in exp.recovery.hypotheses if h.probe == "time_to_clear"))
        cls = FaultClass(path.stem, fault.target[0], fault.toxic, fault.stream,
                         tuple(sorted(fault.attributes.items())), fault.toxicity,
                         tuple(hypotheses))
        found.setdefault((cls.role, cls.toxic, cls.stream, cls.attributes, cls.toxicity), cls)
    return sorted(found.values(), key=lambda c: c.source)


def method_span(minutes: float) -> float:
    """Seconds of the day the faults may fall in: the day less warm-up, baseline,
    recovery and the after window."""
    return minutes * 60 - WARMUP - 2 * BASELINE - RECOVERY - 5


def draw(seed: int, minutes: float, classes: Sequence[FaultClass]) -> list[Planned]:
    """The day's faults from the seed alone: the same seed, minutes and classes give the
    same day. At least one pair overlaps when there are two roles to overlap."""
    if not classes:
        raise ValueError("no fault class to draw from")
    rng = random.Random(seed)
    span = method_span(minutes)
    count = max(2, int(span // SECONDS_PER_FAULT))
    spans: list[tuple[float, float]] = []
    for _ in range(count):
        duration = round(rng.uniform(MIN_DURATION, min(MAX_DURATION, span / 2)), 1)
        start = round(rng.uniform(FIRST_FAULT_AFTER, span - duration), 1)
        spans.append((start, duration))
    spans.sort()
    roles = {c.role for c in classes}
    if len(roles) > 1 and not any(meet((a[0], a[0] + a[1]), (b[0], b[0] + b[1]))
                                  for i, a in enumerate(spans) for b in spans[i + 1:]):
        # None overlaps: the second starts inside the first.
        (s0, d0), (_, d1) = spans[0], spans[1]
        spans[1] = (round(min(s0 + d0 * rng.uniform(0.3, 0.7), span - d1), 1), d1)
        spans.sort()
    day: list[Planned] = []
    for index, (start, duration) in enumerate(spans, 1):
        probe = Planned(index, classes[0], start, duration)
        busy = {p.fault_class.role for p in day if p.overlaps(probe)}
        free = [c for c in classes if c.role not in busy]
        if not free:  # every role is broken then: this one waits until they are back
            start = round(max(p.end for p in day if p.overlaps(probe)) + 1, 1)
            free = list(classes)
        day.append(Planned(index, rng.choice(free), start, duration))
    return day


def experiment(seed: int, minutes: float, day: Sequence[Planned], users: int) -> Experiment:
    """The game day as an experiment: labor-day load over the whole day, a baseline, the
    drawn faults, recovery and the audit. No stop condition: a game day runs its course."""
    return Experiment(
        title=f"Game day (seed {seed}, {minutes:g} min)",
        description=(f"{len(day)} faults drawn from the catalog's fault classes with seed "
                     f"{seed}, under the labor-day shape."),
        tags=["gameday"],
        load=Load(profile="labor-day", users=users, spawn_rate=max(1.0, users / 2),
                  warmup=WARMUP),
        steady_state=SteadyState(duration=BASELINE, hypotheses=[
            Hypothesis(name="checkouts succeed", probe="success_ratio", scope="checkout",
                       tolerance=Tolerance(min=0.9)),
            Hypothesis(name="no ungraceful answers", probe="ungraceful",
                       tolerance=Tolerance(max=0))]),
        faults=[p.fault() for p in day],
        recovery=Recovery(deadline=RECOVERY),
        checks=Checks(),
    )


def schedule_json(seed: int, minutes: float, target: Target, day: Sequence[Planned]
                  ) -> dict[str, Any]:
    """The drawn day, as data (the same seed gives the same file)."""
    return {"seed": seed, "minutes": minutes, "target": target.name, "faults": [
        {"index": p.index, "fault": p.fault_class.label, "source": p.fault_class.source,
         "role": p.fault_class.role, "toxic": p.fault_class.toxic,
         "attributes": dict(p.fault_class.attributes), "start": p.start,
         "duration": p.duration,
         "overlaps": [q.index for q in day if q is not p and q.overlaps(p)]} for p in day]}


@dataclass(slots=True)
class Told:
    """One fault window as the day went."""

    index: int
    label: str
    source: str
    start: float  # epoch seconds, as injected
    end: float  # as rolled back
    told_after: float | None  # seconds until the status page named the dependency
    cleared_after: float | None  # seconds after the rollback until it cleared
    seen: dict[str, int]  # answer classes shoppers got in the window
    checkout_success: float | None
    revenue_at_risk_cents: int
    failed_checkouts: int
    results: list[HypothesisResult]


class GameDayRunner(Runner):
    """A run that, once the load has stopped, also judges each fault's own window with the
    hypotheses its catalog experiment judges it by."""

    def __init__(self, day: Sequence[Planned], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.day = list(day)
        self.windows: list[Told] = []
        # The day's revenue at risk and failed checkouts, each checkout once however
        # many faults were on when it failed.
        self.at_risk: tuple[int, int] = (0, 0)

    def _judge_late(self) -> None:
        super()._judge_late()
        rows, log = self.result.rows, self.result.fault_log
        evidence = read_evidence(self.out_dir / "load")
        spans = {}
        for planned in self.day:
            name = planned.fault().name
            at = {e["event"]: e["at"] for e in log if e["fault"] == name}
            if "injected" in at:  # else the run ended before it
                spans[planned.index] = (at["injected"], at.get("rolled back", at["injected"]))
        for planned in self.day:
            if planned.index not in spans:
                continue
            name = planned.fault().name
            start, end = spans[planned.index]
            window = Window(name, start, end)
            context = Evidence(self.c.status, fault_start=start, last_rollback=end,
                               shop_metrics=self.shop_metrics)
            hypotheses = [h.model_copy(update={"name": f"{name}: {h.name}"})
                          for h in planned.fault_class.hypotheses]
            # What shoppers got is judged while this fault was the only one on (another
            # fault's failures are not this one's); the status page and the contract over
            # the whole window.
            alone = alone_in(start, end, [s for i, s in spans.items() if i != planned.index])
            shared = [h for h in hypotheses if h.probe in SHARED_PROBES]
            results = judge_phase("fault", [h for h in hypotheses if h not in shared],
                                  window, rows, context)
            if alone is not None:
                results += judge_phase("fault", shared, Window(name, *alone), rows, context)
            else:
                self.result.not_judged += [
                    f"{h.name} (never the only fault on for {MIN_ALONE:g} s)" for h in shared]
            self.result.results.extend(results)
            dependency = STATUS_NAME[planned.fault_class.role]
            stats = WindowStats.of(window.rows(rows))
            at_risk, failed = revenue_at_risk(evidence, [(start, end)])
            self.windows.append(Told(
                planned.index, planned.fault_class.label, planned.fault_class.source, start,
                end, self.c.status.first(dependency, start, False),
                self.c.status.first(dependency, end, True), dict(stats.classes),
                stats.success_ratio("checkout"), at_risk, failed, results))
        self.at_risk = revenue_at_risk(evidence, list(spans.values()))


def alone_in(start: float, end: float, others: Sequence[tuple[float, float]]
             ) -> tuple[float, float] | None:
    """The longest stretch of [start, end) no other fault covers, if at least MIN_ALONE s."""
    cuts = sorted((max(s, start), min(e, end)) for s, e in others if meet((s, e), (start, end)))
    best: tuple[float, float] | None = None
    cursor = start
    for s, e in [*cuts, (end, end)]:
        if s - cursor >= MIN_ALONE and (best is None or s - cursor > best[1] - best[0]):
            best = (cursor, s)
        cursor = max(cursor, e)
    return best


def revenue_at_risk(evidence: list[dict[str, Any]], spans: Sequence[tuple[float, float]]
                    ) -> tuple[int, int]:
    """The carts (in cents) of checkouts made in any of the spans whose shopper was left
    without an order (a 201 is an order; a declined card is the card's answer, not the
    outage's), each counted once, and how many there were."""
    cents = failed = 0
    for entry in last_answers(evidence).values():
        at = float(entry.get("ts", 0))
        if not any(start <= at <= end for start, end in spans) or \
                entry.get("status") in (201, 402):
            continue
        failed += 1
        cents += int(entry.get("cart_cents") or 0)
    return cents, failed


def _clock(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s"


def timeline_markdown(result: RunResult, windows: Sequence[Told],
                      schedule: dict[str, Any], at_risk: tuple[int, int]) -> str:
    """The day as a timeline: each fault, when the shop told shoppers, what they saw, what
    it cost, and its verdicts."""
    t0 = result.started
    lines = [f"# Game day — seed {schedule['seed']}, {schedule['minutes']:g} min, target "
             f"{schedule['target']}: {result.verdict.upper()} (score {result.score:g}/100)",
             "", f"{result.reason}", "",
             "| # | what broke (from) | when | told shoppers | cleared | what shoppers saw "
             "| checkout success | revenue at risk | hypotheses |",
             "|---|---|---|---|---|---|---:|---:|---|"]
    overlaps = {f["index"]: f["overlaps"] for f in schedule["faults"]}
    for w in windows:
        held = sum(r.held for r in w.results)
        seen = ", ".join(f"{k} {v}" for k, v in sorted(w.seen.items()) if v) or "nothing"
        with_ = f" (with #{', #'.join(map(str, overlaps[w.index]))})" \
            if overlaps.get(w.index) else ""
        success = "-" if w.checkout_success is None else f"{w.checkout_success:.0%}"
        when = f"{w.start - t0:.0f} to {w.end - t0:.0f} s"
        lines.append(
            f"| {w.index} | {w.label} ({w.source}){with_} | {when} "
            f"| {_clock(w.told_after)} | {_clock(w.cleared_after)} | {seen} | {success} "
            f"| ${w.revenue_at_risk_cents / 100:,.2f} ({w.failed_checkouts} checkouts) "
            f"| {held}/{len(w.results)} held |")
    lines += ["", f"Revenue at risk over the day: **${at_risk[0] / 100:,.2f}** "
              f"({at_risk[1]} checkouts left without an order; each counted once where "
              "faults overlapped).", ""]
    broken = [r for w in windows for r in w.results if not r.held]
    if broken:
        lines.append("Hypotheses that failed:")
        lines += [f"- {r.name}: measured {r.value}, wanted {r.tolerance}"
                  + (f" ({r.note})" if r.note else "") for r in broken]
    return "\n".join(lines) + "\n"


def timeline_lines(windows: Sequence[Told], t0: float) -> list[str]:
    """The timeline for a terminal: a line per fault."""
    lines = []
    for w in windows:
        success = "-" if w.checkout_success is None else f"{w.checkout_success:.0%}"
        lines.append(f"#{w.index} {w.start - t0:>4.0f}-{w.end - t0:.0f} s  {w.label}: told "
                     f"{_clock(w.told_after)}, cleared {_clock(w.cleared_after)}, checkouts "
                     f"{success}, ${w.revenue_at_risk_cents / 100:,.2f} at risk, "
                     f"{sum(r.held for r in w.results)}/{len(w.results)} held")
    return lines


def write_gameday(out: Path, result: RunResult, windows: Sequence[Told],
                  schedule: dict[str, Any], at_risk: tuple[int, int]) -> dict[str, Path]:
    """gameday.md (the timeline), gameday.json (schedule and windows) beside the run's own
    reports."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"timeline": out / "gameday.md", "json": out / "gameday.json"}
    paths["timeline"].write_text(timeline_markdown(result, windows, schedule, at_risk))
    paths["json"].write_text(json.dumps({
        "schedule": schedule, "verdict": result.verdict, "score": result.score,
        "revenue_at_risk_cents": at_risk[0], "failed_checkouts": at_risk[1],
        "windows": [{**asdict(w), "results": [r.as_json() for r in w.results]}
                    for w in windows]}, indent=2))
    return paths
