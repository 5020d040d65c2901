"""Judging: each hypothesis measured over its phase's window of the timeline and the run's
evidence, and the status page's timings for every dependency the method touched."""

from __future__ import annotations

from typing import Any

from loadtests.classify import GIVE_UP_SECONDS

from ..experiment import Hypothesis
from ..probes import Evidence, Window, measure
from ..vocabulary import STATUS_NAME
from .journal import HypothesisResult


def judge(phase: str, h: Hypothesis, window: Window, rows: list[dict[str, Any]],
          evidence: Evidence) -> HypothesisResult:
    """One hypothesis judged over a window of the timeline (and the run's evidence)."""
    judged_over = window
    if phase == "fault" and h.probe == "ungraceful":
        # A request made during the fault that hangs is only seen when the shopper
        # gives up on it, up to GIVE_UP_SECONDS later: it counts against the fault.
        judged_over = Window(window.name, window.start, window.end + GIVE_UP_SECONDS)
    value = measure(h, judged_over, rows, evidence)
    held, note = h.tolerance.holds(value), ""
    if h.probe == "time_to_communicate" and h.dependency is not None:
        before = evidence.status.state_before(h.dependency, evidence.fault_start)
        if before != "operational":
            held = False
            note = (f"status already {before or 'unknown'} before the fault: a status page "
                    "that was not clear before cannot show that it told")
    return HypothesisResult(phase, h.name, h.probe, h.tolerance.describe(),
                            None if value is None else round(value, 4), held, h.weight, note)


def judge_phase(phase: str, hypotheses: list[Hypothesis], window: Window,
                rows: list[dict[str, Any]], evidence: Evidence) -> list[HypothesisResult]:
    """Every hypothesis of one phase."""
    return [judge(phase, h, window, rows, evidence) for h in hypotheses]


def communication(targets: list[str], fault: Window, rows: list[dict[str, Any]],
                  evidence: Evidence) -> dict[str, dict[str, float | None]]:
    """Time-to-communicate and time-to-clear for every dependency the method touched
    (measured in every run, whether hypotheses name them or not)."""
    timings: dict[str, dict[str, float | None]] = {}
    for target in targets:
        dependency = STATUS_NAME[target]
        timings[dependency] = {
            probe: measure(Hypothesis.model_validate(
                {"name": probe, "probe": probe, "dependency": dependency,
                 "tolerance": {"min": 0}}), fault, rows, evidence)
            for probe in ("time_to_communicate", "time_to_clear")}
    return timings


def paging(targets: list[str], evidence: Evidence) -> dict[str, Any]:
    """Time to page and time to resolve for every dependency the method touched, and the
    alerts that named a dependency it did not touch (measured in every observed run)."""
    timings: dict[str, Any] = {}
    for target in targets:
        dependency = STATUS_NAME[target]
        timings[dependency] = {
            probe: measure(Hypothesis.model_validate(
                {"name": probe, "probe": probe, "dependency": dependency,
                 "tolerance": {"min": 0}}), Window("run", 0, 0), [], evidence)
            for probe in ("time_to_page", "time_to_resolve")}
    pages = evidence.pages
    unrelated = [] if pages is None or evidence.fault_start is None else \
        pages.unrelated(set(evidence.broken), evidence.fault_start)
    return {"dependencies": timings,
            "unrelated": [f"{p.alertname} ({p.dependency})" for p in unrelated],
            "pages": [] if pages is None or evidence.fault_start is None else
            [p.as_json() for p in pages.since(evidence.fault_start - 30)]}
