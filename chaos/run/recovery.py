"""Recovery: after the last rollback, when did checkouts succeed again, and when did the
status page clear; the hypotheses recovery is judged by."""

from __future__ import annotations

import time
from typing import Any

from ..experiment import Experiment, Hypothesis, Recovery, Tolerance
from ..probes import StatusPoller, WindowStats
from ..vocabulary import STATUS_NAME
from .load import Feed


def recovered_from(rows: list[dict[str, Any]], since: float, recovery: Recovery,
                   min_answers: int = 3) -> float | None:
    """The first second from which `recovery.window` whole seconds of answers in scope
    succeed at the wanted ratio; None: not yet. A window with fewer than `min_answers`
    judged answers (declines aside: a light load's checkouts are sparse) grows, up to three
    times its length, until it has them."""
    span = max(1, round(recovery.window))
    by_second = {r["ts"]: r for r in rows if r["ts"] >= int(since)}
    for start in sorted(by_second):
        taken: list[dict[str, Any]] = []
        for offset in range(3 * span):
            row = by_second.get(start + offset)
            if row is None:
                break  # not arrived yet (or the load paused): judge no further from here
            taken.append(row)
            stats = WindowStats.of(taken)
            counts = stats.checkouts if recovery.scope == "checkout" else stats.classes
            judged = sum(counts.values()) - counts["declined"]
            if len(taken) >= span and judged >= min_answers:
                ratio = stats.success_ratio(recovery.scope)
                if ratio is not None and ratio >= recovery.success_ratio:
                    return float(start)
                break
    return None


def recovery_hypotheses(exp: Experiment) -> list[Hypothesis]:
    """The experiment's recovery hypotheses (a recovery deadline when it names none), and
    the status page clearing for every dependency the method touched that none judges."""
    declared = list(exp.recovery.hypotheses) or [Hypothesis(
        name=f"{exp.recovery.scope} success back within {exp.recovery.deadline:g}s",
        probe="recovery_time", tolerance=Tolerance(max=exp.recovery.deadline))]
    cleared = {h.dependency for h in exp.all_hypotheses() if h.probe == "time_to_clear"}
    for dependency in sorted({STATUS_NAME[t] for t in exp.targets()} - cleared):
        declared.append(Hypothesis.model_validate({
            "name": f"status page clears {dependency}", "probe": "time_to_clear",
            "dependency": dependency, "tolerance": {"max": exp.recovery.clear_within}}))
    return declared


def wait_recovered(feed: Feed, since: float, recovery: Recovery) -> float | None:
    """Seconds from `since` until the shop recovered (None: not within the deadline, with
    room for the recovery window and the load's last rows)."""
    deadline = since + recovery.deadline + recovery.window + 3
    recovered_at: float | None = None
    while time.time() < deadline and recovered_at is None:
        feed.tick()
        recovered_at = recovered_from(feed.latest, since, recovery)
        feed.pause()
    return None if recovered_at is None else round(max(0.0, recovered_at - since), 2)


def wait_cleared(feed: Feed, status: StatusPoller, targets: list[str], since: float,
                 until: float) -> float | None:
    """When the status page last of all cleared every touched dependency after `since`
    (None: not by `until`); the load's rows keep arriving meanwhile."""
    dependencies = [STATUS_NAME[t] for t in targets]
    while True:
        cleared = [status.first(d, since, True) for d in dependencies]
        if all(c is not None for c in cleared):
            return since + max((c for c in cleared if c is not None), default=0.0)
        if time.time() >= until:
            return None
        feed.tick()
        feed.pause()
