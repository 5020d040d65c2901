"""The resiliency matrix's grading, expectations file and rendering (no servers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.errors import HarnessError
from chaos.matrix import FEATURES, MatrixResult, load_expected, render_html, render_markdown
from chaos.matrix.run import Cell, grade, worst

PROBLEM = {"Content-Type": "application/problem+json", "X-Request-ID": "r1",
           "Retry-After": "5"}


def test_answers_are_graded_from_works_to_broken() -> None:
    assert grade(200, {}, "{}", 0.1) == "works"
    assert grade(200, {}, "{}", 1.5) == "degraded"  # answered, but slowly
    assert grade(200, {"X-Degraded": "cookie_cart"}, "{}", 0.1) == "degraded"
    assert grade(503, PROBLEM, "{}", 0.1) == "graceful error"
    assert grade(500, {"X-Request-ID": "r1"}, "Traceback (most recent call last)", 0.1) == \
        "broken"
    assert grade(None, {}, "", 10.0, "ReadTimeout") == "broken"


def test_a_cell_is_the_worst_of_its_tries() -> None:
    assert worst(["works", "graceful error", "degraded"]) == "graceful error"
    assert worst([]) == "broken"  # nothing observed is not a pass


def test_the_shipped_expectations_cover_every_cell() -> None:
    expected = load_expected()
    for dependency in ("payments", "inventory", "postgres", "redis"):
        for condition in ("degraded", "down"):
            assert {expected.level(dependency, condition, f) for f in FEATURES} <= {
                "works", "degraded", "graceful error", "broken"}


def test_a_bad_expectations_file_names_each_problem(tmp_path: Path) -> None:
    bad = tmp_path / "expected.yaml"
    bad.write_text("conditions: {down: {toxic: down}}\nexpected:\n  payments:\n"
                   "    down: {browse: fine}\n")
    with pytest.raises(HarnessError) as info:
        load_expected(bad)
    text = str(info.value)
    assert "conditions.degraded: is required" in text
    assert "expected.payments.down.browse: must be one of works, degraded" in text
    assert "(not 'fine')" in text and "expected.redis: is required" in text


def result_with(observed: str, expected: str) -> MatrixResult:
    result = MatrixResult("fragile")
    feats = {f: Cell("works", "works", ["works"]) for f in FEATURES}
    feats["checkout"] = Cell(observed, expected, [observed])
    result.cells["payments"] = {"down": feats}
    return result


def test_only_cells_worse_than_expected_fail() -> None:
    assert result_with("works", "degraded").failures == []  # better is fine
    assert result_with("broken", "degraded").failures == [
        "payments down: checkout broken (expected degraded)"]


def test_markdown_and_html_show_observed_next_to_expected() -> None:
    result = result_with("broken", "degraded")
    md = render_markdown(result)
    assert "| payments | down |" in md and "broken (expected degraded — WORSE)" in md
    assert "1 cells worse than expected." in md
    page = render_html(result)
    assert "<table>" in page and "expected degraded" in page and "fragile shop" in page
