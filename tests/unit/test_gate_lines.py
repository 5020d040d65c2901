"""The gate's running table (one line per experiment as it ends, and the total), its
smoke set, and how its lanes are dealt."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from chaos.experiment import catalog
from chaos.lanes import deal
from chaos.session import GateOutcome, gate_line, gate_total
from chaos.vocabulary import TARGETS


def _ran(verdict: str) -> SimpleNamespace:
    return SimpleNamespace(result=SimpleNamespace(verdict=verdict))


def test_a_line_says_verdict_score_and_wall_time() -> None:
    line = gate_line(3, 41, "inventory-hard-down", "failed", 62.5, 75.25)
    assert line.split() == ["3/41", "inventory-hard-down", "failed", "62", "1:15.2"]


def test_the_total_counts_what_did_not_pass_and_the_time() -> None:
    outcome = GateOutcome(runs=[("a", _ran("passed")), ("b", _ran("failed")),  # type: ignore[list-item]
                                ("c", _ran("passed"))], seconds=[60.0, 100.0, 20.0])
    assert gate_total(outcome) == "gate: 2 of 3 passed (1 failed, aborted or errored), 3 min 0 s"
    clean = GateOutcome(runs=[("a", _ran("passed"))], seconds=[42.0])  # type: ignore[list-item]
    assert gate_total(clean) == "gate: 1 of 1 passed, 0 min 42 s"


def test_the_smoke_set_covers_every_dependency_and_every_fault_class_once() -> None:
    experiments = catalog()
    # A fault class is what the per-dependency experiments are named after (the matrix of
    # `<target>-<class>` files), and the shop-side faults.
    classes = {tag for path, e in experiments for tag in e.tags
               if path.stem.split("-")[0] in TARGETS and path.stem.endswith(tag)}
    classes.add("app-fault")
    smoke = [e for _, e in experiments if "smoke" in e.tags]
    assert {t for e in smoke for t in e.targets()} == set(TARGETS)
    covered = Counter(tag for e in smoke for tag in e.tags if tag in classes)
    assert set(covered) == classes and set(covered.values()) == {1}, covered


def test_lanes_get_the_longest_first_and_keep_catalog_order() -> None:
    experiments = catalog()[:9]
    lanes = deal(experiments, 3, 0.4)
    dealt = [path for lane in lanes for path, _ in lane.chosen]
    assert sorted(dealt) == sorted(p for p, _ in experiments)  # each exactly once
    for lane in lanes:
        names = [p.stem for p, _ in lane.chosen]
        assert names == sorted(names)  # the catalog's order
    planned = [sum(e.scaled(0.4).planned_seconds() for _, e in lane.chosen) for lane in lanes]
    longest = max(e.scaled(0.4).planned_seconds() for _, e in experiments)
    assert max(planned) - min(planned) <= longest
    assert len(deal(experiments[:2], 3, 0.4)) == 2  # no empty lane
