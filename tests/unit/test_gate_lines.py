"""The gate's running table: one line per experiment as it ends, and the total."""

from __future__ import annotations

from types import SimpleNamespace

from chaos.session import GateOutcome, gate_line, gate_total


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
