"""The game day's draw: the seed alone makes the day, faults come from the catalog's classes
the target can take, some overlap (never two on one dependency), and a fault's shoppers
are judged only while it was the only one on; revenue at risk counts the carts left."""

from __future__ import annotations

import pytest

from chaos.gameday import (
    FIRST_FAULT_AFTER,
    alone_in,
    draw,
    experiment,
    fault_classes,
    method_span,
    revenue_at_risk,
    schedule_json,
)
from chaos.target import TARGETS_DIR, parse_target
from tests.unit.test_target import STACK


def target(name: str):
    path = TARGETS_DIR / f"{name}.yaml"
    return parse_target(path.read_text(), str(path), variables={}, stack=STACK)


@pytest.fixture(scope="module")
def reference_classes():
    return fault_classes(target("reference"))


def test_the_same_seed_draws_the_same_day_and_another_seed_another(reference_classes) -> None:
    reference = target("reference")
    day = schedule_json(7, 3, reference, draw(7, 3, reference_classes))
    again = schedule_json(7, 3, reference, draw(7, 3, fault_classes(reference)))
    other = schedule_json(8, 3, reference, draw(8, 3, reference_classes))
    assert day == again
    assert day["faults"] != other["faults"]


@pytest.mark.parametrize("seed", range(40))
def test_a_day_overlaps_some_faults_never_two_on_one_dependency(reference_classes,
                                                                seed: int) -> None:
    day = draw(seed, 4, reference_classes)
    assert len(day) == int(method_span(4) // 35)
    assert any(a.overlaps(b) for a in day for b in day if a is not b)
    for a in day:
        assert a.start >= FIRST_FAULT_AFTER  # a quiet baseline may grow into the gap
        for b in day:
            if a is not b and a.overlaps(b):
                assert a.fault_class.role != b.fault_class.role
    built = experiment(seed, 4, day, users=30)
    assert built.load.profile == "labor-day" and not built.stop_conditions
    assert [f.name for f in built.faults] == [f"#{p.index} {p.fault_class.label}" for p in day]


def test_the_classes_are_the_catalogs_single_faults_the_target_can_take(
        reference_classes) -> None:
    sources = {c.source for c in reference_classes}
    assert "payments-hard-down" in sources and "redis-latency-brownout" in sources
    assert "payments-and-inventory-slow-together" not in sources  # two faults at once
    hard_down = next(c for c in reference_classes if c.source == "payments-hard-down")
    assert {h.probe for h in hard_down.hypotheses} >= {"time_to_communicate", "time_to_clear",
                                                        "ungraceful"}
    basket = fault_classes(target("basket"))
    assert {c.role for c in basket} == {"payments", "inventory", "postgres"}


def test_a_fault_is_alone_in_its_longest_stretch_without_another() -> None:
    assert alone_in(0, 30, []) == (0, 30)
    assert alone_in(0, 30, [(10, 12)]) == (12, 30)
    assert alone_in(0, 30, [(-5, 8), (25, 40)]) == (8, 25)
    assert alone_in(0, 30, [(0, 27)]) is None  # 3 s alone is too short to judge
    assert alone_in(0, 30, [(0, 14), (12, 40)]) is None


def test_revenue_at_risk_is_the_carts_of_checkouts_left_without_an_order() -> None:
    evidence = [
        {"idempotency_key": "a", "ts": 5, "attempt": 1, "status": 503, "cart_cents": 1000},
        {"idempotency_key": "a", "ts": 6, "attempt": 2, "status": 201, "cart_cents": 1000},
        {"idempotency_key": "b", "ts": 7, "attempt": 1, "status": 503, "cart_cents": 2500},
        {"idempotency_key": "c", "ts": 8, "attempt": 1, "status": 0, "cart_cents": 400},
        {"idempotency_key": "d", "ts": 9, "attempt": 1, "status": 402, "cart_cents": 900},
        {"idempotency_key": "e", "ts": 50, "attempt": 1, "status": 503, "cart_cents": 700},
    ]
    assert revenue_at_risk(evidence, [(0, 10)]) == (2900, 2)  # b, c; a retried, d declined
    # Overlapping windows: each checkout once.
    assert revenue_at_risk(evidence, [(0, 8), (6, 10), (40, 60)]) == (3600, 3)
